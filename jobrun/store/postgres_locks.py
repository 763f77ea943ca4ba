"""Session-level advisory locks on PostgreSQL: what replaces the SQLite store's flock files
when services run on several hosts. A lock lives as long as the connection that took it, so
when a host dies or is cut off (its backend ends) every other host sees it free at once.
jobrun/presence/postgres.py builds liveness and cron leadership on them.

A forked child (a task's `os.fork()`) shares the parent's sockets: one left open would keep
a dead service's session, and so its locks, alive. The child closes its copies of them
(only the descriptor: the parent's session is untouched, psycopg never ends it from a child).
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from typing import Any

import psycopg

from .postgres_sql import PQ, sql, wrap

# Connections whose socket a forked child must not keep (lock holders, doorbells).
_guarded: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()


def close_in_child(conn: psycopg.Connection[Any]) -> None:
    """Have forked children close their copy of `conn`'s socket."""
    _guarded.add(conn)


def _in_child() -> None:
    for conn in list(_guarded):
        with contextlib.suppress(Exception):
            os.close(conn.fileno())
    _guarded.clear()


os.register_at_fork(after_in_child=_in_child)


class AdvisoryLocks:
    """The locks one process holds, each on a connection of its own (not pooled: giving a
    pooled connection back would keep or lose the lock by accident)."""

    def __init__(self, location: str, shown: str, timeout: dict[str, Any] | None = None
                 ) -> None:
        self.location, self.shown = location, shown
        self._timeout = timeout or {}  # connect_timeout, unless the URL says
        self._held: dict[tuple[str, str], psycopg.Connection[Any]] = {}
        self._lock = threading.Lock()

    def take(self, kind: str, name: str) -> bool:
        """Take the lock `kind`/`name` for as long as this process keeps it; False if another
        session holds it."""
        with self._lock:
            if (kind, name) in self._held:
                return True
            try:
                conn = psycopg.connect(self.location, autocommit=True,
                                       application_name=f"jobrun {kind}", **self._timeout)
                row = conn.execute(sql(PQ["lock_try"]), {"kind": kind, "name": name}
                                   ).fetchone()
            except psycopg.Error as exc:
                raise wrap(exc, self.shown) from exc
            if not (row and row[0]):
                conn.close()
                return False
            close_in_child(conn)
            self._held[(kind, name)] = conn
            return True

    def still_held(self, kind: str, name: str) -> bool:
        """Whether our session still holds it (a cut-off connection lost it)."""
        conn = self._held.get((kind, name))
        if conn is None:
            return False
        try:
            conn.execute(sql(PQ["schema_exists"]))
            return True
        except psycopg.Error:
            self.let_go(kind, name)
            return False

    def let_go(self, kind: str, name: str) -> None:
        with self._lock:
            conn = self._held.pop((kind, name), None)
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.execute(sql(PQ["lock_free"]), {"kind": kind, "name": name})
            conn.close()

    def close(self) -> None:
        for kind, name in list(self._held):
            self.let_go(kind, name)
