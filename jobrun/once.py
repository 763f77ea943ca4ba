"""`jobrun.once(key)`: exactly-once in effect, for side effects of at-least-once jobs.

    with jobrun.once(f"welcome-email:{user_id}") as op:
        if op.done:
            return                          # an earlier attempt did it
        mailer.send(user_id, idempotency_key=op.key)
        op.connection.execute("INSERT INTO sent_emails VALUES (?)", (user_id,))

The key is recorded in `processed_operations` in the same transaction as the bookkeeping the
block writes through `op.connection`, at the end of the block; an exception records nothing
(the retry does the work again). The write transaction opens only when the block first uses
`op.connection`, so the side effect itself runs without holding the store's write lock.
What cannot be made atomic is the side effect and the record: a crash between them repeats
the side effect once, which is why `op.key` should also go to the other system when it takes
an idempotency key.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any

import apsw

from . import clock
from .config import resolve_store
from .context import current
from .errors import JobrunError
from .store.sqlite import BUSY_TIMEOUT_MS, SqliteStore


class Once:
    def __init__(self, key: str, store: str | os.PathLike[str] | None = None) -> None:
        if not isinstance(key, str) or not key:
            raise TypeError(f"once() needs a non-empty str key, not {key!r}")
        self.key = key
        ctx = current()
        path = os.fspath(store) if store is not None else (
            ctx.store if ctx is not None and ctx.store else resolve_store())
        SqliteStore(path).close()  # the schema exists (created or migrated) before we use it
        self._path = path
        self._conn: apsw.Connection | None = None
        self._in_txn = False
        self.done = False
        self.duplicate = False

    @property
    def connection(self) -> apsw.Connection:
        """The store connection inside this block's write transaction (opened on first use)."""
        conn = self._connect()
        if not self._in_txn:
            conn.execute("BEGIN IMMEDIATE")
            self._in_txn = True
        return conn

    def _connect(self) -> apsw.Connection:
        if self._conn is None:
            self._conn = apsw.Connection(self._path)
            self._conn.set_busy_timeout(BUSY_TIMEOUT_MS)
        return self._conn

    def __enter__(self) -> Once:
        row = self._connect().execute(
            "SELECT 1 FROM processed_operations WHERE key = ?", (self.key,)).fetchone()
        self.done = row is not None
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        conn = self._connect()
        try:
            if exc_type is not None or self.done:
                if self._in_txn:
                    conn.execute("ROLLBACK")
                return
            if not self._in_txn:
                conn.execute("BEGIN IMMEDIATE")
                self._in_txn = True
            ctx = current()
            inserted = conn.execute(
                "INSERT INTO processed_operations (key, job_id, done_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO NOTHING RETURNING key",
                (self.key, ctx.job_id if ctx else None, clock.now())).fetchone()
            if inserted is None:
                # Another attempt recorded it meanwhile: keep its bookkeeping, drop ours.
                conn.execute("ROLLBACK")
                self.duplicate = True
                return
            conn.execute("COMMIT")
        except apsw.Error as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise JobrunError(f"once({self.key!r}) could not record: {e}") from e
        finally:
            self._in_txn = False
            conn.close()
            self._conn = None


def once(key: str, *, store: str | os.PathLike[str] | None = None) -> Once:
    """A block that runs its side effect at most once per `key` (see the module doc)."""
    return Once(key, store)


def forget(key: str, *, store: str | os.PathLike[str] | None = None) -> bool:
    """Remove a recorded operation so it may run again; whether it was there."""
    path = os.fspath(store) if store is not None else resolve_store()
    s = SqliteStore(path)
    try:
        with s.write() as conn:
            conn.execute("DELETE FROM processed_operations WHERE key = ?", (key,))
            return bool(conn.changes())
    finally:
        s.close()


__all__: list[Any] = ["Once", "forget", "once"]
