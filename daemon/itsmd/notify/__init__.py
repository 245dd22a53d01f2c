"""Notifications: the sink interface, routes, their config, and the outbox worker.

`connector`, `routes` and `config` sit beside the pure core (connectors import
`connector` and nothing deeper); `worker` drains the outbox and may import
`store` and `runtime`.
"""
