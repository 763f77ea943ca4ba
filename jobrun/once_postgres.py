"""`jobrun.once` on a PostgreSQL store (postgres_once.sql): a block borrows a connection of
this process's pool for the store and gives it back at its end; `op.connection` is that
psycopg connection inside the block's transaction (placeholders `%s`).

A transaction-level advisory lock on the key makes the look-up and the hold one step across
hosts (as `BEGIN IMMEDIATE` does on SQLite), and the look-up locks the row, so a block seen
recording the key right now is waited for and its record seen. Imports psycopg: once.py
loads this module only for a `postgresql://` store.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import psycopg

from .store.contract import StepRecord
from .store.postgres import PostgresStore
from .store.postgres_sql import sql
from .store.postgres_workflows import record_steps_in
from .store.queries import parse, read_sql

SQL = parse(read_sql("postgres_once.sql"))

_stores: dict[tuple[int, str], PostgresStore] = {}
_lock = threading.Lock()


def where(location: str) -> str:
    """The store's one name (a step scope and a block compare it): its URL."""
    return location


def _store(location: str) -> PostgresStore:
    """This process's store on `location` (schema created or migrated on first use); a
    forked child opens its own (a pool does not survive a fork)."""
    with _lock:
        store = _stores.get((os.getpid(), location))
        if store is None:
            store = _stores[(os.getpid(), location)] = PostgresStore(location)
        return store


def ensure(location: str) -> None:
    _store(location)


class PgBlock:
    """One once block's connection to a PostgreSQL store (autocommit, explicit BEGIN: a
    `connection=` enqueue through it finds its transaction open)."""

    errors: tuple[type[Exception], ...] = (psycopg.Error,)

    def __init__(self, location: str) -> None:
        self._store = _store(location)
        self.connection: Any = self._store.pool.getconn()

    @property
    def in_transaction(self) -> bool:
        status = self.connection.info.transaction_status
        return bool(status != psycopg.pq.TransactionStatus.IDLE)

    def begin(self) -> None:
        self.connection.execute("BEGIN")

    def commit(self) -> None:
        self.connection.execute("COMMIT")

    def rollback(self) -> None:
        self.connection.execute("ROLLBACK")

    def close(self) -> None:
        self._store.pool.putconn(self.connection)

    def _one(self, name: str, params: dict[str, Any]) -> Any:
        return self.connection.execute(sql(SQL[name]), params).fetchone()

    def get(self, key: str) -> tuple[str, str | None, float] | None:
        self._one("once_lock", {"key": key})
        row = self._one("once_get", {"key": key})
        return (row[0], row[1], row[2]) if row is not None else None

    def owner_running(self, job_id: int, token: int) -> bool:
        return self._one("once_owner_running", {"id": job_id, "token": token}) is not None

    def hold(self, key: str, job_id: int | None, now: float, owner: str) -> None:
        self.connection.execute(sql(SQL["once_hold"]), {"key": key, "job_id": job_id,
                                                        "now": now, "owner": owner})

    def let_go(self, key: str, owner: str) -> None:
        self.connection.execute(sql(SQL["once_let_go"]), {"key": key, "owner": owner})

    def done(self, key: str, owner: str, now: float) -> bool:
        return self._one("once_done", {"now": now, "key": key, "owner": owner}) is not None

    def record_steps(self, job_id: int, token: int, steps: list[StepRecord]) -> bool:
        return record_steps_in(self.connection, job_id, token, steps)


def open_block(location: str) -> PgBlock:
    return PgBlock(location)


def forget(location: str, key: str) -> bool:
    with _store(location).write() as conn:
        return bool(conn.execute(sql(SQL["once_forget"]), {"key": key}).rowcount)
