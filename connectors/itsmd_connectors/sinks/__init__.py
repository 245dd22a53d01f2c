"""Notification sinks: one module per outside system, each exposing `KIND`.

They register under the `itsmd.sinks` entry point group in pyproject.toml,
exactly as a sink from another package would. `_tickets` is no sink: it holds
what the ticket sinks write alike.
"""
