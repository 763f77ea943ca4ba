"""Presence: who serves a store, who leads its cron, and the doorbell that wakes services.

The service, maintenance, the scheduler, the producer and the operator commands ask these
questions through `Presence`, never of lock files or sockets directly, because the answer
depends on where the store lives: beside a SQLite file, flock files and datagram sockets
(files.py: one host); on PostgreSQL, session-level advisory locks and LISTEN/NOTIFY
(postgres.py: every host sees a death, a cut-off connection, a wake-up). `presence_for`
picks one; psycopg is imported only for a PostgreSQL store.
"""

from __future__ import annotations

from ..store import is_postgres
from ..store.contract import Store
from .contract import Presence


def presence_for(store: Store) -> Presence:
    """The presence of `store`'s services: files beside a SQLite store, advisory locks and
    LISTEN/NOTIFY on PostgreSQL (imported only then: it imports psycopg)."""
    if is_postgres(store.path):
        from .postgres import PgPresence
        return PgPresence(store)
    from .files import FilePresence
    return FilePresence(store.path)
