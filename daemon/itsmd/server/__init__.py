"""The process: the composition root (`app.build_app`), listening, signals, systemd.

The only place that imports the connectors and wires every capability together.
"""
