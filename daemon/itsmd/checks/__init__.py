"""Availability and capacity checks: specs, state machines, forecasts, uptime.

`spec`, `state`, `forecast`, `availability` and `report` are pure (they may import
`models`, `durations`, `yamlsource` and `correlation`); `probes` does the network
and disk I/O; `runner` and `jobs` are the edge that schedules, stores and feeds
results to the writer (they may import `store` and `runtime`).
"""
