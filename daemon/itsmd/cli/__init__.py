"""The `itsmd` command: the daemon, offline rule tools, and a client of the JSON API.

`main` starts the daemon through `server`; `client` speaks HTTP only.
"""
