"""Correlation: alerts to incidents, problems and known errors, as pure decisions.

Rule files (matchers, routing, templates), the correlator, incident lifecycle,
priority and SLA due times. No I/O and no clock: imports only `models`,
`durations`, `yamlsource` and the pure check specs (`checks.spec`).
"""
