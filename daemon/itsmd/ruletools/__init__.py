"""Offline rule tooling: `rules check`, `rules test`, `replay` and `explain`.

Runs the pure correlation over alerts in virtual time, with no store and no
daemon; imports only `correlation`, `models`, `durations` and `yamlsource`.
"""
