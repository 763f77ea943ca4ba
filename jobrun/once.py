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
While a block runs, its key is held by a pending row naming the attempt (job id and fencing
token): a concurrent attempt of the same operation waits, then retries later; a pending row
whose attempt no longer runs is taken over. What cannot be made atomic is the side effect
and the record: a crash between them repeats
the side effect once, which is why `op.key` should also go to the other system when it takes
an idempotency key.

In a workflow step (StepScope), the block's transaction stays open at its end for the step's
record to join it: the writes through `op.connection`, the key and the step's result commit
together or not at all. A step that goes on after its block (or starts another block, or
fails) commits the block alone first, at most HOLD_FOR seconds later, so the store's write
lock is never held for the rest of a long step.

The store's own bookkeeping is behind `Block`: once_sqlite.py (apsw, `?` placeholders) and
once_postgres.py (psycopg, `%s`; loaded only for a `postgresql://` store).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Protocol

from . import clock, once_sqlite
from .config import resolve_store
from .context import current
from .errors import InvalidJob, JobrunError, Retry
from .store import is_postgres
from .store.contract import StepRecord

STALE_AFTER = 600.0  # a pending claim made outside a job is taken over after this
#: How long a step's last block keeps its transaction open for the step's record.
HOLD_FOR = 0.05


class Block(Protocol):
    """One block's connection to its store and the bookkeeping queries on it."""

    connection: Any
    errors: tuple[type[Exception], ...]

    @property
    def in_transaction(self) -> bool: ...
    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...
    def get(self, key: str) -> tuple[str, str | None, float] | None: ...
    def owner_running(self, job_id: int, token: int) -> bool: ...
    def hold(self, key: str, job_id: int | None, now: float, owner: str) -> None: ...
    def let_go(self, key: str, owner: str) -> None: ...
    def done(self, key: str, owner: str, now: float) -> bool: ...
    def record_steps(self, job_id: int, token: int, steps: list[StepRecord]) -> bool: ...


def _backend(location: str) -> Any:
    """The module that keeps `once` records in the store at `location`."""
    if is_postgres(location):
        from . import once_postgres  # psycopg: only for a PostgreSQL store

        return once_postgres
    return once_sqlite


class StepScope:
    """A workflow step running here: holds its last once block's open transaction until
    the step's record joins it (finish), or commits it alone (flush)."""

    def __init__(self, path: str) -> None:
        self.path: str = _backend(path).where(path)
        self._block: Block | None = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._failed: str | None = None

    def hold(self, block: Block) -> None:
        with self._lock:
            self._block = block
            self._timer = threading.Timer(HOLD_FOR, self.flush, kwargs={"quiet": True})
            self._timer.daemon = True
            self._timer.start()

    def _take(self) -> Block | None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._failed is not None:
            raise JobrunError(self._failed)
        block, self._block = self._block, None
        return block

    def flush(self, quiet: bool = False) -> None:
        """Commit the held block alone (the step goes on, fails, or opens another block);
        a failed commit fails the step (from the timer: at its record)."""
        with self._lock:
            if quiet and self._failed is not None:
                return
            block = self._take()
            if block is None:
                return
            try:
                block.commit()
            except block.errors as e:
                with contextlib.suppress(*block.errors):
                    block.rollback()
                self._failed = f"a once block of this step could not record: {e}"
                if not quiet:
                    raise JobrunError(self._failed) from e
            finally:
                block.close()

    def finish(self, job_id: int, token: int, steps: list[StepRecord]) -> bool | None:
        """The step's record (with those waiting for a commit) in the held block's
        transaction, all committed (or, fenced, all rolled back); None when no block is held
        (record them the usual way)."""
        with self._lock:
            block = self._take()
            if block is None:
                return None
            try:
                held = block.record_steps(job_id, token, steps)
                if held:
                    block.commit()
                else:
                    block.rollback()
                return held
            except block.errors as e:
                with contextlib.suppress(*block.errors):
                    block.rollback()
                raise JobrunError(f"step {steps[-1].name} could not record with its "
                                  f"once block: {e}") from e
            finally:
                block.close()


_SCOPE: contextvars.ContextVar[StepScope | None] = contextvars.ContextVar(
    "jobrun_step_scope", default=None)


@contextlib.contextmanager
def step_scope(path: str) -> Iterator[StepScope]:
    """Run one attempt of a workflow step on the store at `path` (see StepScope)."""
    scope = StepScope(path)
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)
        scope.flush()


class Once:
    def __init__(self, key: str, store: str | os.PathLike[str] | None = None,
                 wait: float = 1.0) -> None:
        if not isinstance(key, str) or not key:
            raise InvalidJob(f"once() needs a non-empty str key, not {key!r}")
        self.key = key
        ctx = current()
        held = _SCOPE.get()
        if held is not None:
            held.flush()  # an earlier block of this step: it commits before this one begins
        path = os.fspath(store) if store is not None else (
            ctx.store if ctx is not None and ctx.store else resolve_store())
        self._backend = _backend(path)
        self._backend.ensure(path)  # the schema exists (created or migrated) before we use it
        self._path = path
        self._block: Block | None = None
        self._in_txn = False
        self._wait = wait
        self._owner = f"{ctx.job_id}:{ctx.token}" if ctx else f"pid:{os.getpid()}:{id(self)}"
        self._job_id = ctx.job_id if ctx else None
        self.done = False
        self.duplicate = False

    @property
    def connection(self) -> Any:
        """The store connection inside this block's write transaction (opened on first use):
        an apsw connection on SQLite, a psycopg one on PostgreSQL."""
        block = self._connect()
        if not self._in_txn:
            block.begin()
            self._in_txn = True
        return block.connection

    def _connect(self) -> Block:
        if self._block is None:
            self._block = self._backend.open_block(self._path)
        return self._block

    def _owner_alive(self, block: Block, owner: str | None, since: float) -> bool:
        """A pending row's attempt still runs (its job is running with that token)."""
        if owner and ":" in owner and not owner.startswith("pid:"):
            job_id, token = owner.split(":", 1)
            return block.owner_running(int(job_id), int(token))
        return clock.now() - since < STALE_AFTER  # outside a job: trust it for a while

    def __enter__(self) -> Once:
        block = self._connect()
        deadline = clock.monotonic() + self._wait
        while True:
            block.begin()
            row = block.get(self.key)
            if row is not None and row[0] == "done":
                block.commit()
                self.done = True
                return self
            if row is None or row[1] == self._owner or not self._owner_alive(block, row[1],
                                                                              row[2]):
                block.hold(self.key, self._job_id, clock.now(), self._owner)
                block.commit()
                return self
            block.commit()
            if clock.monotonic() >= deadline:
                # Another attempt is doing it right now: come back when it is done.
                raise Retry(delay=self._wait, message=f"operation {self.key!r} is being "
                            f"performed by attempt {row[1]}")
            time.sleep(0.05)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        block = self._connect()
        try:
            if self.done:
                if self._in_txn:
                    block.rollback()
                return
            if exc_type is not None:
                if self._in_txn:
                    block.rollback()
                self._in_txn = False
                block.begin()  # let the next attempt do it
                block.let_go(self.key, self._owner)
                block.commit()
                return
            if not self._in_txn:
                block.begin()
                self._in_txn = True
            if not block.done(self.key, self._owner, clock.now()):
                # Taken over (we were thought dead): keep the other's record, drop ours.
                block.rollback()
                self.duplicate = True
                return
            scope = _SCOPE.get()
            if scope is not None and scope.path == self._backend.where(self._path):
                scope.hold(block)  # the step's record commits with it
                self._block = None
                return
            block.commit()
        except block.errors as e:
            if block.in_transaction:
                block.rollback()
            raise JobrunError(f"once({self.key!r}) could not record: {e}") from e
        finally:
            self._in_txn = False
            if self._block is not None:
                block.close()
                self._block = None


def once(key: str, *, store: str | os.PathLike[str] | None = None, wait: float = 1.0
         ) -> Once:
    """A block that runs its side effect once per `key` (see the module doc). If another
    attempt is performing the same operation, wait up to `wait` seconds for it, then raise
    `Retry` so this job comes back when it is done."""
    return Once(key, store, wait)


def forget(key: str, *, store: str | os.PathLike[str] | None = None) -> bool:
    """Remove a recorded operation so it may run again; whether it was there."""
    path = os.fspath(store) if store is not None else resolve_store()
    return bool(_backend(path).forget(path, key))


__all__: list[Any] = ["Once", "forget", "once"]
