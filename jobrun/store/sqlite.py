"""The SQLite store (apsw, WAL): one file, the single source of truth.

Every write is `BEGIN IMMEDIATE` (writers queue on the busy timeout instead of failing on
an upgrade), each thread has its own connection, and the schema version lives in
`PRAGMA user_version`.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import apsw

from ..errors import StoreError
from ..limits import Limits
from ..location import foreign, is_url
from ..model import Claim, NewJob, Outcome, error_entry
from . import rounds, rows
from .busy import retried, wait_briefly
from .contract import AttemptState, DashboardRead, Expired, Rescued, Round, Store
from .files import (
    BUSY_TIMEOUT_MS,
    check_file,
    create_private,
    in_caller,
    readonly_fallback,
    warn_if_shared,
    wrap,
)
from .migrations import SCHEMA_VERSION, migrate, migrate_in
from .operator import OperatorActions
from .queries import Q, parse, read_sql
from .rows import row_to_record
from .sqlite_catalog import CatalogActions, catalog_readers
from .sqlite_workflows import WorkflowActions

__all__ = ["BUSY_TIMEOUT_MS", "SqliteStore", "catalog_readers", "enqueue_in", "row_to_record",
           "wrap"]


#: Every commit appends each page it changed to the WAL, and a job's life is three small
#: commits (enqueue, claim, record) of 2-3 pages each: on flash the bytes per job follow the
#: page size (4096: about 33 KB a job; 1024: about 9 KB). Below 1024 rows of a few hundred
#: bytes spill into overflow pages and rounds get slower. An existing store keeps its size.
PAGE_SIZE = 1024

#: The dashboard's named reads (DashboardStore), each answered by an index.
DASHBOARD = parse(read_sql("dashboard.sql"))


# A commit that takes the WAL past SQLite's 1,000 pages copies them into the file first, for
# 1-10 ms: a producer's connections (a web request's enqueue) wait for 4x that, so that a
# service's commit, off any request's path, nearly always does it.
PRODUCER_CHECKPOINT = 4000

class SqliteStore(WorkflowActions, OperatorActions, CatalogActions, Store):
    """The store contract on one SQLite file. Thread-safe: a connection per thread."""

    def __init__(self, path: str | os.PathLike[str], *, durability: str = "normal",
                 readonly: bool = False, vfs: str | None = None, create: bool = True,
                 adopt: bool = True, producer: bool = False) -> None:
        if is_url(os.fspath(path)):
            raise StoreError(f"store {os.fspath(path)!r} is a URL, not a SQLite file"
                             + (f": {foreign(os.fspath(path))}" if foreign(os.fspath(path)) else ""))
        self.vfs = vfs  # an apsw VFS name (fault injection in the torture tests)
        self.path = os.path.realpath(os.fspath(path))
        if durability not in ("normal", "full"):
            raise StoreError(f"durability must be 'normal' or 'full', not {durability!r}")
        self.durability = durability
        self.readonly = readonly
        self.producer = producer
        self._local = threading.local()
        self._conns: list[apsw.Connection] = []
        self._lock = threading.Lock()
        exists = check_file(self.path)
        warn_if_shared(self.path)
        if (readonly or not create) and not exists:
            raise StoreError(f"store {self.path} does not exist")
        if not exists:
            create_private(self.path)
        conn = self.connection()
        if not readonly:
            try:  # schema set-up under BEGIN IMMEDIATE, again if SQLite failed it at once
                retried(conn, lambda: migrate(conn, self.path))
            except apsw.Error as exc:
                raise wrap(exc, self.path, conn=conn) from exc
            if adopt and durability == "normal" and self._stated_durability(conn) == "full":
                # The service's config says every commit is synced: a producer that never
                # read that config (App("jobs.db")) must not acknowledge less.
                self.durability = "full"
                conn.execute("PRAGMA synchronous=FULL")

    @staticmethod
    def _stated_durability(conn: apsw.Connection) -> str | None:
        try:
            row = conn.execute(Q["meta_get"], {"name": "durability"}).fetchone()
        except apsw.SQLError:  # a store from before the meta table
            return None
        return str(row[0]) if row else None

    # -- connections -------------------------------------------------------------------
    def _open(self) -> apsw.Connection:
        try:
            return self._open_at(self.path)
        except StoreError as exc:  # a reader in a folder it may not write: see readonly_fallback
            uri = self.readonly and isinstance(exc.__cause__, (apsw.ReadOnlyError,
                                                              apsw.CantOpenError)) \
                and readonly_fallback(self.path)
            if not uri:
                raise
            return self._open_at(uri)

    def _open_at(self, name: str) -> apsw.Connection:
        flags = apsw.SQLITE_OPEN_READONLY if self.readonly else apsw.SQLITE_OPEN_READWRITE
        conn: apsw.Connection | None = None
        try:
            conn = apsw.Connection(name, flags=flags | apsw.SQLITE_OPEN_URI, vfs=self.vfs)
            wait_briefly(conn, BUSY_TIMEOUT_MS)
            version = conn.execute("PRAGMA user_version").get
            if version > SCHEMA_VERSION:
                conn.close()
                raise StoreError(
                    f"store {self.path} has schema version {version}, newer than this jobrun "
                    f"knows ({SCHEMA_VERSION}): upgrade jobrun; the file was not touched")
            if not self.readonly:
                retried(conn, lambda: self._to_wal(conn))
            sync = "FULL" if self.durability == "full" else "NORMAL"
            conn.execute(f"PRAGMA synchronous={sync}; PRAGMA temp_store=MEMORY;")
            if self.producer:  # see PRODUCER_CHECKPOINT
                conn.execute(f"PRAGMA wal_autocheckpoint={PRODUCER_CHECKPOINT}")
        except apsw.Error as exc:
            if conn is not None:
                conn.close()  # no -wal/-shm left beside a refused file
            raise wrap(exc, self.path, reading=self.readonly, conn=conn) from exc
        return conn

    @staticmethod
    def _to_wal(conn: apsw.Connection) -> None:
        """The file in WAL mode. Switching reads, then writes: two openers of a file not
        WAL yet deadlock on it and SQLite fails one at once (the caller runs it again)."""
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new, empty file only
        if conn.execute("PRAGMA journal_mode").get != "wal":
            conn.execute("PRAGMA journal_mode=WAL")

    def connection(self) -> apsw.Connection:
        """This thread's connection to the store."""
        conn: apsw.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()

    @contextlib.contextmanager
    def write(self, conn: apsw.Connection | None = None) -> Iterator[apsw.Connection]:
        """One `BEGIN IMMEDIATE` transaction; apsw errors come out as StoreError."""
        c = conn or self.connection()
        try:
            c.execute("BEGIN IMMEDIATE")
        except apsw.Error as exc:
            raise wrap(exc, self.path, conn=c) from exc
        try:
            yield c
        except BaseException as exc:
            with contextlib.suppress(apsw.Error):
                c.execute("ROLLBACK")
            if isinstance(exc, apsw.Error):
                raise wrap(exc, self.path, conn=c) from exc
            raise
        try:
            c.execute("COMMIT")
        except apsw.Error as exc:
            with contextlib.suppress(apsw.Error):
                c.execute("ROLLBACK")
            raise wrap(exc, self.path, conn=c) from exc

    @contextlib.contextmanager
    def dashboard(self) -> Iterator[DashboardRead]:
        conn = self.connection()

        def read(name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            names: list[str] = []
            try:
                cur = conn.execute(DASHBOARD[name], params)
                for r in cur:
                    names = names or [d[0] for d in cur.getdescription()]
                    out.append(dict(zip(names, r)))
            except apsw.Error as exc:
                raise wrap(exc, self.path, conn=conn) from exc
            return out

        try:
            conn.execute("BEGIN")
            try:
                yield read
            finally:
                conn.execute("COMMIT")
        except apsw.Error as exc:
            raise wrap(exc, self.path, conn=conn) from exc

    def schema(self) -> tuple[int, int]:
        return int(self.read("PRAGMA user_version")[0][0]), SCHEMA_VERSION

    def read(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        conn = self.connection()
        try:
            return list(conn.execute(sql, params))
        except apsw.Error as exc:
            raise wrap(exc, self.path, conn=conn) from exc

    # -- enqueue -----------------------------------------------------------------------
    @staticmethod
    def _insert(conn: apsw.Connection, jobs: list[NewJob], now: float) -> list[int]:
        if len(jobs) > 1 and all(j.key is None for j in jobs):
            return SqliteStore._insert_many(conn, jobs, now)
        ids: list[int] = []
        find, insert = Q["find_active_key"], Q["insert_job"]
        for j in jobs:
            if j.key is not None:
                row = conn.execute(find, {"task": j.task, "key": j.key}).fetchone()
                if row is not None:
                    ids.append(row[0])
                    continue
            ids.append(conn.execute(insert, {
                "task": j.task, "queue": j.queue, "args": j.args, "kwargs": j.kwargs,
                "priority": j.priority, "state": "scheduled" if j.scheduled else "queued",
                "max_attempts": j.max_attempts, "run_at": j.run_at, "key": j.key, "now": now,
                "trace_id": j.trace_id, "timeout": j.timeout, "options": j.options,
                "ckey": j.concurrency_key,
            }).get)
        return ids

    @staticmethod
    def _insert_many(conn: apsw.Connection, jobs: list[NewJob], now: float) -> list[int]:
        """One executemany. Inside our write transaction rowids are consecutive (INTEGER
        PRIMARY KEY without AUTOINCREMENT takes max+1), so the ids follow from the last one."""
        conn.executemany(Q["insert_job_plain"], [
            (j.task, j.queue, j.args, j.kwargs, j.priority,
             "scheduled" if j.scheduled else "queued", j.max_attempts, j.run_at, now,
             j.trace_id, j.timeout, j.options, j.concurrency_key) for j in jobs])
        last = int(conn.last_insert_rowid())
        first = last - len(jobs) + 1
        ids = list(range(first, last + 1))
        if conn.execute(Q["count_ids_between"], {"first": first, "last": last}
                        ).get != len(jobs):  # a rowid past 2**63 is random
            raise StoreError("could not determine the ids of the new jobs")
        return ids

    def enqueue(self, jobs: list[NewJob], *, connection: Any = None, now: float) -> list[int]:
        """Insert jobs in one transaction; with `connection`, inside the caller's own."""
        if connection is not None:
            return enqueue_in(connection, jobs, now=now, path=self.path)
        with self.write() as conn:
            return self._insert(conn, jobs, now)

    # -- the worker's round: record outcomes, promote, acquire ---------------------------
    def acquire_round(self, outcomes: list[Outcome], wants: dict[str, int], holder: str, *,
                      now: float, lease: float, full: bool = True,
                      paused: frozenset[str] = frozenset(), next_due: float | None = None,
                      limits: Limits | None = None, limited: frozenset[str] = frozenset(),
                      tasks: frozenset[str] | None = None, ahead: dict[str, int] | None = None,
                      began: list[tuple[int, int, float]] | None = None) -> Round:
        with self.write() as conn:
            r, claimed = rounds.acquire_round(
                conn, outcomes, wants, holder, now=now, lease=lease, full=full,
                paused=paused, next_due=next_due, limits=limits, limited=limited,
                tasks=tasks, ahead=ahead, began=began)
        # Read once the write lock is let go: other writers (a web request) wait less.
        got, bad = rounds.claims(claimed, now)
        if bad:
            with self.write() as conn:
                conn.executemany(Q["fail"], bad)
        r.claims.extend(got)
        return r

    def record(self, outcomes: list[Outcome], *, now: float) -> int:
        """Record outcomes alone (a drain, or a result arriving after claims stopped);
        returns how many still held their lease."""
        return len(self.record_outcomes(outcomes, now=now))

    def record_outcomes(self, outcomes: list[Outcome], *, now: float) -> frozenset[int]:
        """As `record`; returns the tokens of the outcomes recorded."""
        with self.write() as conn:
            return rounds.record(conn, outcomes, now)

    def attempt_states(self, ids: list[int]) -> dict[int, AttemptState]:
        rows = self.read(Q["attempt_states"], {"ids": json.dumps(ids)})
        return {r[0]: AttemptState(r[1], r[2]) for r in rows}

    # -- cron --------------------------------------------------------------------------------
    def last_fire(self, entry: str) -> float | None:
        rows = self.read(Q["last_fire"], {"entry": entry})
        return rows[0][0] if rows else None

    def fire(self, entry: str, fire_at: float, job: Callable[[], NewJob], *, now: float
             ) -> int | None:
        with self.write() as conn:
            row = conn.execute(Q["insert_fire"], {"entry": entry, "fire_at": fire_at}
                               ).fetchone()
            if row is None:
                return None  # fired already (another leader overlapped)
            (job_id,) = self._insert(conn, [job()], now)
            conn.execute(Q["set_fire_job"], {"entry": entry, "fire_at": fire_at,
                                             "job_id": job_id})
        return job_id

    # -- leases ---------------------------------------------------------------------------
    def extend_leases(self, holder: str, *, now: float, lease: float) -> int:
        with self.write() as conn:
            conn.execute(Q["extend_holder"], {"holder": holder, "lease_until": now + lease})
            renewed = int(conn.changes())
            conn.execute(Q["extend_letting_go"], {"holder": holder, "lease_until": now + lease})
            return renewed

    def extend_lease(self, job_id: int, token: int, *, now: float, lease: float) -> bool:
        with self.write() as conn:
            row = conn.execute(Q["extend_job"], {"id": job_id, "token": token,
                                                 "lease_until": now + lease}).fetchone()
        return row is not None

    def running_holders(self) -> list[str]:
        return [r[0] for r in self.read(Q["running_holders"]) if r[0] is not None]

    def expired_leases(self, *, now: float) -> list[Expired]:
        return [Expired(r[0], r[1]) for r in self.read(Q["expired_leases"], {"now": now})]

    def rescue_holder(self, holder: str, reason: str, *, now: float,
                      begun: frozenset[int] | None = None) -> list[Rescued]:
        """Put a dead holder's running jobs back (attempt counted), or dead if exhausted;
        its held jobs that `begun` shows never began, back as they were."""
        error = json.dumps(error_entry("WorkerLost", reason, None, now))
        with self.write() as conn:
            unspent = [] if begun is None else [
                i for i, token in conn.execute(Q["held_of_holder"], {"holder": holder})
                if token not in begun]
            rescued = [Rescued(i, t, q, a, s, bool(u)) for i, t, q, a, s, u in conn.execute(
                Q["rescue_holder"], {"holder": holder, "now": now, "error": error,
                                     "unspent": json.dumps(unspent)})]
            conn.execute(Q["let_go_holder"], {"holder": holder})  # its cancelled attempts
            return rescued

    def rescue_expired(self, job_id: int, reason: str, *, now: float) -> list[Rescued]:
        error = json.dumps(error_entry("LeaseExpired", reason, None, now))
        with self.write() as conn:
            rescued = [Rescued(i, t, q, a, s) for i, t, q, a, s, _ in conn.execute(
                Q["rescue_job"], {"id": job_id, "now": now, "error": error})]
            conn.execute(Q["let_go_expired"], {"id": job_id, "now": now})  # a cancelled one
            return rescued

    def acquire_job(self, job_id: int, holder: str, *, now: float, lease: float) -> Claim | None:
        """Claim one given job (inline mode), whatever its run_at."""
        with self.write() as conn:
            r = conn.execute(Q["acquire_id"], {"id": job_id, "holder": holder, "now": now,
                                               "lease_until": now + lease}).fetchone()
        return None if r is None else rows.claim(r)


def enqueue_in(connection: apsw.Connection, jobs: list[NewJob], *, now: float,
               path: str) -> list[int]:
    """Insert jobs inside the caller's open transaction: they commit or roll back with the
    caller's own rows. A store not set up yet is set up through that same connection (a
    connection of ours would wait on the caller's write lock)."""
    in_caller(connection, path)
    try:
        migrate_in(connection, path)
        return SqliteStore._insert(connection, jobs, now)
    except apsw.Error as exc:
        raise wrap(exc, path, conn=connection) from exc
