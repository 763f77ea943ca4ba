"""The job store: the contract every caller is typed against, and its implementations."""

from ..location import is_postgres, refuse_foreign
from ..model import NewJob, Outcome
from .contract import Round, Store
from .sqlite import SqliteStore

__all__ = ["NewJob", "Outcome", "Round", "SqliteStore", "Store", "is_postgres", "open_store"]


def open_store(location: str, *, durability: str = "normal", readonly: bool = False,
               adopt: bool = True, create: bool = True, producer: bool = False) -> Store:
    """The store at `location` (a SQLite file path, or a postgresql:// URL), set up or
    migrated on first open. psycopg is imported only here, for a PostgreSQL URL. With
    `adopt`, a SQLite store whose service stated durability = "full" is opened so too;
    a service states its own (`adopt=False`). Without `create`, a missing file is refused
    (an operator's typo must not make an empty store); a database is never created here.
    A `producer` (an App's enqueues, a web request's) leaves WAL checkpoints to services."""
    refuse_foreign(location)
    if is_postgres(location):
        from .postgres import PostgresStore  # the postgres extra: only when asked
        return PostgresStore(location, durability=durability, readonly=readonly)
    return SqliteStore(location, durability=durability, readonly=readonly, adopt=adopt,
                       create=create, producer=producer)
