"""The HTTP interface: thin aiohttp handlers over the use cases in `runtime`.

May import everything below it (`runtime`, `store`, the check runner and the
outbox worker); only `server` imports it.
"""
