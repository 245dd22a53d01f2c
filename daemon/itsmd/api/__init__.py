"""The HTTP interface: thin aiohttp handlers over the use cases."""
