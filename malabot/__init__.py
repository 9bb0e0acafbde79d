"""MalaBoT: a multi-server Discord community bot with one SQLite file per server."""

__version__ = "0.1.0"
