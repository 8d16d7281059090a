"""k2sim: a stateful simulator of the Kaminario K2 REST API v2."""

__version__ = "0.1.0"
