"""The running daemon's state and the single writer every change goes through.

`state` (settings, rules in force, store), `writer` (group-committed units of
work), on-call `actions`, scheduled `housekeeping`, own `metrics`, the outgoing
HTTP session. May import `store`, `correlation`, `config`; never `api` or `server`.
"""
