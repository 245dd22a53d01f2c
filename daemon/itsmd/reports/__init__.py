"""Reports: the service review and the post-incident review (docs/reports.md).

Pure: `periods` (half-open periods in a time zone), `figures` (the review's
figures from the facts the store gives), `postmortem` (the post-incident review),
`markdown`, `html` and `charts` (the same documents rendered). They import
`models`, `durations`, `correlation` and the pure `checks` modules only, never the
clock, the store or aiohttp; `store/reportstore.py` reads their facts and
`api/reports.py` puts the two together.
"""
