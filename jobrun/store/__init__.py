"""The job store: a contract (base.py) and its SQLite implementation."""

from .base import NewJob, Outcome, Store, Tick
from .sqlite import SqliteStore

__all__ = ["NewJob", "Outcome", "SqliteStore", "Store", "Tick"]
