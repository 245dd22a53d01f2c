"""itsmd connectors: sources (alertmanager, generic) and, later, notification sinks."""
