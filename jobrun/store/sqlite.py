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
from ..limits import Bucket, Candidate, Limits, choose, round_robin
from ..model import Claim, NewJob, Outcome
from .contract import Rescued, Round, Store
from .files import BUSY_TIMEOUT_MS, check_file, create_private, warn_if_shared, wrap
from .migrations import SCHEMA_VERSION, migrate, migrate_in
from .operator import OperatorActions, row_to_record
from .queries import Q
from .sqlite_workflows import WQ, WorkflowActions

__all__ = ["BUSY_TIMEOUT_MS", "SqliteStore", "enqueue_in", "row_to_record", "wrap"]


def _list(text: str) -> Any:
    if text == "[]":
        return []
    value = json.loads(text)
    if not isinstance(value, list):
        raise ValueError(f"args must be a JSON array, not {type(value).__name__}")
    return value


def _dict(text: str) -> Any:
    if text == "{}":
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, not {type(value).__name__}")
    return value


class SqliteStore(WorkflowActions, OperatorActions, Store):
    """The store contract on one SQLite file. Thread-safe: a connection per thread."""

    def __init__(self, path: str | os.PathLike[str], *, durability: str = "normal",
                 readonly: bool = False, vfs: str | None = None) -> None:
        self.vfs = vfs  # an apsw VFS name (fault injection in the torture tests)
        self.path = os.path.realpath(os.fspath(path))
        if durability not in ("normal", "full"):
            raise StoreError(f"durability must be 'normal' or 'full', not {durability!r}")
        self.durability = durability
        self.readonly = readonly
        self._local = threading.local()
        self._conns: list[apsw.Connection] = []
        self._lock = threading.Lock()
        exists = check_file(self.path)
        warn_if_shared(self.path)
        if readonly and not exists:
            raise StoreError(f"store {self.path} does not exist")
        if not exists:
            create_private(self.path)
        conn = self.connection()
        if not readonly:
            try:
                migrate(conn, self.path)
            except apsw.Error as exc:
                raise wrap(exc, self.path) from exc

    # -- connections -------------------------------------------------------------------
    def _open(self) -> apsw.Connection:
        flags = apsw.SQLITE_OPEN_READONLY if self.readonly else apsw.SQLITE_OPEN_READWRITE
        conn: apsw.Connection | None = None
        try:
            conn = apsw.Connection(self.path, flags=flags | apsw.SQLITE_OPEN_URI,
                                   vfs=self.vfs)
            conn.set_busy_timeout(BUSY_TIMEOUT_MS)
            version = conn.execute("PRAGMA user_version").get
            if version > SCHEMA_VERSION:
                conn.close()
                raise StoreError(
                    f"store {self.path} has schema version {version}, newer than this jobrun "
                    f"knows ({SCHEMA_VERSION}): upgrade jobrun; the file was not touched")
            if not self.readonly:
                mode = conn.execute("PRAGMA journal_mode").get
                if mode != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
            sync = "FULL" if self.durability == "full" else "NORMAL"
            conn.execute(f"PRAGMA synchronous={sync}; PRAGMA temp_store=MEMORY;")
        except apsw.Error as exc:
            if conn is not None:
                conn.close()  # no -wal/-shm left beside a refused file
            raise wrap(exc, self.path) from exc
        return conn

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
            raise wrap(exc, self.path) from exc
        try:
            yield c
        except BaseException as exc:
            with contextlib.suppress(apsw.Error):
                c.execute("ROLLBACK")
            if isinstance(exc, apsw.Error):
                raise wrap(exc, self.path) from exc
            raise
        try:
            c.execute("COMMIT")
        except apsw.Error as exc:
            with contextlib.suppress(apsw.Error):
                c.execute("ROLLBACK")
            raise wrap(exc, self.path) from exc

    def read(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        try:
            return list(self.connection().execute(sql, params))
        except apsw.Error as exc:
            raise wrap(exc, self.path) from exc

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
                "ckey": j.ckey,
            }).get)
        return ids

    @staticmethod
    def _insert_many(conn: apsw.Connection, jobs: list[NewJob], now: float) -> list[int]:
        """One executemany. Inside our write transaction rowids are consecutive (INTEGER
        PRIMARY KEY without AUTOINCREMENT takes max+1), so the ids follow from the last one."""
        conn.executemany(Q["insert_job_plain"], [
            (j.task, j.queue, j.args, j.kwargs, j.priority,
             "scheduled" if j.scheduled else "queued", j.max_attempts, j.run_at, now,
             j.trace_id, j.timeout, j.options, j.ckey) for j in jobs])
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
    def acquire_round(self, outcomes: list[Outcome], wants: dict[str, int], holder: str, *, now: float,
             lease: float, full: bool = True, paused: frozenset[str] = frozenset(),
             next_due: float | None = None, limits: Limits | None = None,
             limited: frozenset[str] = frozenset(),
             tasks: frozenset[str] | None = None) -> Round:
        """One round in one transaction: record outcomes, then claim up to `wants`, only jobs
        of `tasks` (the tasks this service runs; None: any).

        A full round also promotes due jobs and reads paused queues and the next due time;
        a light one (between outcomes under load) trusts the caller's `paused`/`next_due`."""
        claims: list[Claim] = []
        applied: frozenset[int] = frozenset()
        with self.write() as conn:
            if outcomes:
                applied = self._record(conn, outcomes, now)
            if full:
                conn.execute(Q["promote_due"], {"now": now})
                paused = frozenset(r[0] for r in conn.execute(Q["paused_queues"]))
            acquire = Q["acquire"]
            retry_in: float | None = None
            for queue, limit in wants.items():
                if limit <= 0 or queue in paused:
                    continue
                if limits is not None and queue in limits.caps:
                    # The cap holds across every service on the host: count all holders.
                    running = conn.execute(Q["running_in_queue"], {"queue": queue}).get
                    limit = min(limit, limits.caps[queue] - running)
                    if limit <= 0:
                        continue
                args = {"holder": holder, "now": now, "queue": queue, "limit": limit,
                        "lease_until": now + lease}
                present = self._queued_tasks(conn, queue, tasks)
                if not present:
                    continue
                if limits is not None and queue in limited:
                    rows, wait = self._acquire_limited(conn, args, limits, present)
                    if wait is not None:
                        retry_in = wait if retry_in is None else min(retry_in, wait)
                elif len(present) == 1:
                    rows = list(conn.execute(acquire, {**args, "task": present[0]}))
                else:
                    rows = self._acquire_merged(conn, args, present)
                if len(rows) > 1:  # RETURNING has no order: hand them out by priority, age
                    rows.sort(key=lambda r: (-r[11], r[0]))
                for r in rows:
                    try:
                        claims.append(Claim(r[0], r[1], r[2], _list(r[3]), _dict(r[4]), r[5],
                                            r[6], r[7], r[8], r[9], _dict(r[10])))
                    except (ValueError, TypeError, RecursionError) as exc:
                        # A row no enqueue could write (edited by hand, a bug): it goes dead
                        # alone instead of failing every round of its queue.
                        conn.execute(Q["fail"], {
                            "id": r[0], "token": r[7], "state": "dead", "run_at": now,
                            "finished_at": now, "error": json.dumps({
                                "at": now, "type": "BadPayload", "attempt": r[5],
                                "message": f"unreadable stored payload: {exc}"[:500]})})
            if full or outcomes:  # an outcome may wake a waiting workflow (its fan-in)
                next_due = conn.execute(Q["next_due"]).get
        return Round(claims, next_due, len(applied), paused, retry_in, applied)

    @staticmethod
    def _queued_tasks(conn: apsw.Connection, queue: str, tasks: frozenset[str] | None
                      ) -> list[str]:
        """The tasks (of `tasks`) with queued jobs in `queue`: a skip-scan of jobs_ready, one
        index seek per task present, so other services' backlogs cost nothing here."""
        present: list[str] = []
        after = ""
        step = Q["queued_task_after"]
        while True:
            row = conn.execute(step, {"queue": queue, "after": after}).fetchone()
            if row is None:
                return present
            after = row[0]
            if tasks is None or after in tasks:
                present.append(after)

    @staticmethod
    def _acquire_merged(conn: apsw.Connection, args: dict[str, Any], present: list[str]
                        ) -> list[tuple[Any, ...]]:
        """Several tasks queued in one queue: the best `limit` of their heads, in claim
        order (priority, then age), each head read in index order."""
        heads: list[tuple[Any, ...]] = []
        for task in present:
            heads.extend(conn.execute(Q["candidates"], {"queue": args["queue"], "task": task,
                                                        "limit": args["limit"]}))
        heads.sort(key=lambda r: (-r[1], r[0]))
        rows: list[tuple[Any, ...]] = []
        for job_id, _ in heads[:args["limit"]]:
            rows.extend(conn.execute(Q["acquire_ids"], {**args, "id": job_id}))
        return rows

    def _acquire_limited(self, conn: apsw.Connection, args: dict[str, Any], limits: Limits,
                         present: list[str]) -> tuple[list[tuple[Any, ...]], float | None]:
        """Claim within key caps and rate limits, keys served round robin (see limits.py)."""
        queue, budget, now = args["queue"], args["limit"], args["now"]
        heads: dict[str | None, list[Candidate]] = {}
        unkeyed: list[Candidate] = []
        for task in present:
            unkeyed.extend(Candidate(*r) for r in conn.execute(
                Q["ready_without_key"], {"queue": queue, "task": task, "limit": budget}))
        if unkeyed:
            unkeyed.sort(key=lambda c: (-c.priority, c.id))
            heads[None] = unkeyed[:budget]
        mine = json.dumps(present)
        for (ckey,) in conn.execute(Q["ready_keys"], {"queue": queue}):
            found = [Candidate(*r) for r in conn.execute(
                Q["ready_of_key"], {"queue": queue, "ckey": ckey, "limit": budget,
                                    "tasks": mine})]
            if found:
                heads[ckey] = found
        running: dict[str, int] = {r[0]: r[1] for r in conn.execute(Q["running_by_key"])}
        buckets: dict[str, Bucket] = {}
        names = {f"queue:{queue}"} | {f"task:{c.task}" for cs in heads.values() for c in cs} | \
            {f"key:{k}" for k in heads if k is not None}
        for name in names:
            row = conn.execute(Q["get_bucket"], {"name": name}).fetchone()
            if row is not None:
                buckets[name] = Bucket(row[0], row[1])
        ids, wait = choose(round_robin(heads), budget, limits, queue, running, buckets, now)
        rows: list[tuple[Any, ...]] = []
        for job_id in ids:
            rows.extend(conn.execute(Q["acquire_ids"], {**args, "id": job_id}))
        for name, b in buckets.items():
            conn.execute(Q["put_bucket"], {"name": name, "tokens": b.tokens, "at": b.at})
        return rows, wait

    def _record(self, conn: apsw.Connection, outcomes: list[Outcome], now: float
                ) -> frozenset[int]:
        """Record outcomes fenced by their tokens; returns the tokens that still held their
        lease (the others were cancelled or taken back: their results are discarded)."""
        done = []
        failed = []
        released = []
        suspended = []
        for o in outcomes:
            if o.state == "succeeded":
                done.append({"id": o.id, "token": o.token, "result": o.result, "now": now})
            elif o.state == "released":
                released.append({"id": o.id, "token": o.token})
            elif o.state == "suspended":  # a workflow waits (jobrun/workflows)
                suspended.append({"id": o.id, "token": o.token, "now": now,
                                  "run_at": o.run_at if o.run_at is not None else now})
            else:
                finished = now if o.state in ("dead", "cancelled") else None
                failed.append({"id": o.id, "token": o.token, "state": o.state,
                               "run_at": o.run_at if o.run_at is not None else now,
                               "finished_at": finished, "error": json.dumps(o.error or {})})
        ids: set[int] = set()
        for sql, params in ((Q["complete"], done), (Q["fail"], failed),
                            (Q["release"], released), (WQ["suspend"], suspended)):
            if params:
                ids.update(r[0] for r in conn.executemany(sql, params))
        return frozenset(o.token for o in outcomes if o.id in ids)

    def record(self, outcomes: list[Outcome], *, now: float) -> int:
        """Record outcomes alone (a drain, or a result arriving after claims stopped);
        returns how many still held their lease."""
        return len(self.record_outcomes(outcomes, now=now))

    def record_outcomes(self, outcomes: list[Outcome], *, now: float) -> frozenset[int]:
        """As `record`; returns the tokens of the outcomes recorded."""
        with self.write() as conn:
            return self._record(conn, outcomes, now)

    def attempt_states(self, ids: list[int]) -> dict[int, tuple[str, int | None]]:
        rows = self.read(Q["attempt_states"], {"ids": json.dumps(ids)})
        return {r[0]: (r[1], r[2]) for r in rows}

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

    # -- the task catalog -------------------------------------------------------------------
    def publish_catalog(self, holder: str, entries: dict[str, str], *, now: float) -> None:
        """Say which tasks `holder` runs (task -> JSON of its effective options), replacing
        what it said before; the first declaration ever is remembered (`catalog_born`)."""
        with self.write() as conn:
            conn.execute(Q["catalog_forget_holder"], {"holder": holder})
            conn.executemany(Q["catalog_put"], [
                {"task": t, "holder": holder, "options": o, "now": now}
                for t, o in entries.items()])
            conn.execute(Q["meta_init"], {"name": "catalog_born", "value": repr(now)})

    def touch_catalog(self, holder: str, *, now: float) -> None:
        """A clean stop: `holder` ran its tasks until `now` (they stay recent from here)."""
        with self.write() as conn:
            conn.execute(Q["catalog_touch"], {"holder": holder, "now": now})

    def forget_catalog(self, holder: str, *, before: float) -> None:
        """Drop a dead holder's declarations older than `before`."""
        with self.write() as conn:
            conn.execute(Q["catalog_forget_old"], {"holder": holder, "before": before})

    def catalog(self) -> list[tuple[str, str, dict[str, Any], float]]:
        """Every declaration: (task, holder, options, seen_at), newest first per task."""
        return _catalog_rows(self.read(Q["catalog_all"]))

    def catalog_born(self) -> float | None:
        """When a service first declared tasks in this store (None: never)."""
        rows = self.read(Q["meta_get"], {"name": "catalog_born"})
        try:
            return float(rows[0][0]) if rows else None
        except (TypeError, ValueError):
            return None

    def queued_pairs(self) -> list[tuple[str, str]]:
        """Every (queue, task) with queued jobs: one index seek each."""
        out: list[tuple[str, str]] = []
        queue, task = "", ""
        while True:
            rows = self.read(Q["queued_pair_after"], {"queue": queue, "task": task})
            if not rows:
                return out
            queue, task = rows[0]
            out.append((queue, task))

    def dead_unknown(self, queue: str, task: str, message: str, *, now: float,
                     limit: int = 500) -> list[int]:
        """Queued jobs of a task nobody runs go dead (UnknownTask), a batch at a time."""
        error = json.dumps({"at": now, "type": "UnknownTask", "message": message,
                            "attempt": None})
        with self.write() as conn:
            return [r[0] for r in conn.execute(Q["dead_unknown"], {
                "queue": queue, "task": task, "now": now, "error": error, "limit": limit})]

    # -- leases ---------------------------------------------------------------------------
    def extend_leases(self, holder: str, *, now: float, lease: float) -> int:
        with self.write() as conn:
            conn.execute(Q["extend_holder"], {"holder": holder, "lease_until": now + lease})
            return int(conn.changes())

    def extend_lease(self, job_id: int, token: int, *, now: float, lease: float) -> bool:
        with self.write() as conn:
            row = conn.execute(Q["extend_job"], {"id": job_id, "token": token,
                                                 "lease_until": now + lease}).fetchone()
        return row is not None

    def running_holders(self) -> list[str]:
        return [r[0] for r in self.read(Q["running_holders"]) if r[0] is not None]

    def expired_leases(self, *, now: float) -> list[tuple[int, str]]:
        return [(r[0], r[1]) for r in self.read(Q["expired_leases"], {"now": now})]

    def rescue_holder(self, holder: str, reason: str, *, now: float) -> list[Rescued]:
        """Put a dead holder's running jobs back (attempt counted), or dead if exhausted."""
        error = json.dumps({"at": now, "type": "WorkerLost", "message": reason, "attempt": None})
        with self.write() as conn:
            return list(conn.execute(Q["rescue_holder"], {"holder": holder, "now": now,
                                                          "error": error}))

    def rescue_expired(self, job_id: int, reason: str, *, now: float) -> list[Rescued]:
        error = json.dumps({"at": now, "type": "LeaseExpired", "message": reason, "attempt": None})
        with self.write() as conn:
            return list(conn.execute(Q["rescue_job"], {"id": job_id, "now": now, "error": error}))

    def acquire_job(self, job_id: int, holder: str, *, now: float, lease: float) -> Claim | None:
        """Claim one given job (inline mode), whatever its run_at."""
        with self.write() as conn:
            r = conn.execute(Q["acquire_id"], {"id": job_id, "holder": holder, "now": now,
                                               "lease_until": now + lease}).fetchone()
        if r is None:
            return None
        return Claim(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), r[5], r[6], r[7],
                     r[8], r[9], json.loads(r[10]))


def enqueue_in(connection: apsw.Connection, jobs: list[NewJob], *, now: float,
               path: str) -> list[int]:
    """Insert jobs inside the caller's open transaction: they commit or roll back with the
    caller's own rows. A store not set up yet is set up through that same connection (a
    connection of ours would wait on the caller's write lock)."""
    if not connection.in_transaction:
        raise StoreError("connection= must be inside an open transaction (BEGIN ...)")
    try:
        migrate_in(connection, path)
        return SqliteStore._insert(connection, jobs, now)
    except apsw.Error as exc:
        raise wrap(exc, path) from exc


def catalog_readers(connection: apsw.Connection) -> tuple[
        Callable[[], list[tuple[str, str, dict[str, Any], float]]], Callable[[], float | None]]:
    """The catalog read through a caller's connection (a store that may not be set up yet:
    no catalog then)."""
    def read() -> list[tuple[str, str, dict[str, Any], float]]:
        try:
            return _catalog_rows(list(connection.execute(Q["catalog_all"])))
        except apsw.SQLError:
            return []

    def born() -> float | None:
        try:
            rows = list(connection.execute(Q["meta_get"], {"name": "catalog_born"}))
            return float(rows[0][0]) if rows else None
        except (apsw.SQLError, TypeError, ValueError):
            return None
    return read, born


def _catalog_rows(rows: list[tuple[Any, ...]]) -> list[tuple[str, str, dict[str, Any], float]]:
    out = []
    for task, holder, options, seen in rows:
        try:
            opts = json.loads(options)
        except ValueError:
            opts = {}
        out.append((task, holder, opts if isinstance(opts, dict) else {}, seen))
    return out
