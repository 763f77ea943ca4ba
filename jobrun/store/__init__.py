"""The job store: the contract every caller is typed against, and its implementations."""

from ..model import NewJob, Outcome
from .contract import Round, Store
from .sqlite import SqliteStore

__all__ = ["NewJob", "Outcome", "Round", "SqliteStore", "Store", "open_store"]


def open_store(location: str, *, durability: str = "normal", readonly: bool = False) -> Store:
    """The store at `location` (a SQLite file path), set up or migrated on first open."""
    return SqliteStore(location, durability=durability, readonly=readonly)
