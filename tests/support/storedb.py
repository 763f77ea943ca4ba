"""A test's own connection to a store, a SQLite file or a PostgreSQL URL, for the raw reads
(and the few writes) of real-process tests: the same tables and columns on both stores
(JSON kept as text, times as Unix seconds), so one query, with `?` parameters, serves both.
Not jobrun's connections: what a test checks must not go through the code under test."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jobrun.location import is_postgres

#: The sessions holding a session-level advisory lock of this schema (postgres_locks.py:
#: `kind`/`name` hashed with the schema), as their client ports: who holds a lock, from the
#: server, as /proc/locks tells it of a flock file.
_LOCK_PORTS = (
    "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.classid = hashtext('jobrun:' || current_schema() || ':' || %s)::oid "
    "AND l.objid = hashtext(%s)::oid")

#: Sessions of these client ports (one process's) inside a transaction now.
_IN_TRANSACTION = (
    "SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY(%s) "
    "AND datname = current_database() AND xact_start IS NOT NULL")


class StoreDB:
    """Raw SQL on a store: `all`, `one`, `write` (one transaction), with `?` placeholders."""

    def __init__(self, store: str) -> None:
        self.postgres = is_postgres(store)
        self.conn: Any
        if self.postgres:
            import psycopg
            self.conn = psycopg.connect(store, autocommit=True, connect_timeout=10,
                                        application_name="jobrun test reader")
        else:
            import apsw
            self.conn = apsw.Connection(store)
            self.conn.set_busy_timeout(30_000)

    def _sql(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s") if self.postgres else sql

    def all(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        if self.postgres:
            return [tuple(r) for r in self.conn.execute(self._sql(sql), params or ()).fetchall()]
        return list(self.conn.execute(sql, params))

    def one(self, sql: str, params: Any = None) -> Any:
        rows = self.all(sql, params)
        return rows[0][0] if rows else None

    def write(self, statements: Iterable[tuple[str, Any]]) -> None:
        """(sql, params) pairs in one transaction (an immediate one on SQLite)."""
        if self.postgres:
            with self.conn.transaction():
                for sql, params in statements:
                    self.conn.execute(self._sql(sql), params or ())
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                self.conn.execute(sql, params)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def lock_ports(self, kind: str, name: str) -> set[int]:
        """PostgreSQL: the client ports of the sessions holding jobrun's advisory lock
        `kind`/`name` of this store (one at most)."""
        assert self.postgres
        return {r[0] for r in self.conn.execute(_LOCK_PORTS, (kind, name)).fetchall()}

    def in_transaction(self, ports: set[int]) -> bool:
        """PostgreSQL: whether a session of these client ports is inside a transaction."""
        assert self.postgres
        row = self.conn.execute(_IN_TRANSACTION, (sorted(ports),)).fetchone()
        return bool(row and row[0])

    def close(self) -> None:
        self.conn.close()
