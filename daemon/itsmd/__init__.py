"""itsmd: incident automation daemon."""

__version__ = "0.1.0"
