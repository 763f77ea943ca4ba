"""`jobrun.once` on a SQLite store: one apsw connection per block (once.sql).

`BEGIN IMMEDIATE` takes the store's write lock, so the look-up of a key and its hold are one
step; the lock is taken only when the block first writes (or records).
"""

from __future__ import annotations

import os
from typing import Any

import apsw

from .store.busy import wait_briefly
from .store.contract import StepRecord
from .store.queries import parse, read_sql
from .store.sqlite import BUSY_TIMEOUT_MS, SqliteStore
from .store.sqlite_workflows import record_steps_in

SQL = parse(read_sql("once.sql"))


def where(location: str) -> str:
    """The store's one name (a step scope and a block compare it)."""
    return os.path.realpath(location)


def ensure(location: str) -> None:
    """The schema exists (created or migrated) before a block uses it."""
    SqliteStore(location).close()


class SqliteBlock:
    """One once block's connection to a SQLite store."""

    errors: tuple[type[Exception], ...] = (apsw.Error,)

    def __init__(self, location: str) -> None:
        self.connection: Any = apsw.Connection(location)
        wait_briefly(self.connection, BUSY_TIMEOUT_MS)

    @property
    def in_transaction(self) -> bool:
        return bool(self.connection.in_transaction)

    def begin(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.connection.execute("COMMIT")

    def rollback(self) -> None:
        self.connection.execute("ROLLBACK")

    def close(self) -> None:
        self.connection.close()

    def get(self, key: str) -> tuple[str, str | None, float] | None:
        row = self.connection.execute(SQL["once_get"], {"key": key}).fetchone()
        return (row[0], row[1], row[2]) if row is not None else None

    def owner_running(self, job_id: int, token: int) -> bool:
        return self.connection.execute(SQL["once_owner_running"], {
            "id": job_id, "token": token}).fetchone() is not None

    def hold(self, key: str, job_id: int | None, now: float, owner: str) -> None:
        self.connection.execute(SQL["once_hold"], {"key": key, "job_id": job_id, "now": now,
                                                   "owner": owner})

    def let_go(self, key: str, owner: str) -> None:
        self.connection.execute(SQL["once_let_go"], {"key": key, "owner": owner})

    def done(self, key: str, owner: str, now: float) -> bool:
        return self.connection.execute(SQL["once_done"], {
            "now": now, "key": key, "owner": owner}).fetchone() is not None

    def record_steps(self, job_id: int, token: int, steps: list[StepRecord]) -> bool:
        return record_steps_in(self.connection, job_id, token, steps)


def open_block(location: str) -> SqliteBlock:
    return SqliteBlock(location)


def forget(location: str, key: str) -> bool:
    s = SqliteStore(location)
    try:
        with s.write() as conn:
            conn.execute(SQL["once_forget"], {"key": key})
            return bool(conn.changes())
    finally:
        s.close()
