"""How the daemon and its ingest process log: to stderr, the journal under systemd."""

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
