"""The SQLite store (apsw, WAL): one file, the single source of truth.

Every write is `BEGIN IMMEDIATE` (writers queue on the busy timeout instead of failing on
an upgrade), each thread has its own connection, and the schema version lives in
`PRAGMA user_version`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import threading
from collections.abc import Iterator
from typing import Any

import apsw

log = logging.getLogger("jobrun.store")

from ..errors import StoreError
from ..limits import Bucket, Candidate, Limits, choose, round_robin
from ..model import Claim, JobRecord, JobState
from .base import NewJob, Outcome, Tick
from .migrations import SCHEMA_VERSION, migrate, migrate_in
from .queries import Q

BUSY_TIMEOUT_MS = 30_000

_JOB_COLUMNS = ("id", "task", "queue", "args", "kwargs", "priority", "state", "attempts",
                "max_attempts", "run_at", "key", "result", "errors", "enqueued_at", "started_at",
                "finished_at", "holder", "token", "lease_until", "trace_id", "timeout", "options")


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


def _lenient(text: Any, default: Any) -> Any:
    """For reading (ls, show): a column that is not JSON is shown as its raw text."""
    if text is None:
        return default
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return f"<unreadable: {str(text)[:200]}>"


def row_to_record(row: tuple[Any, ...]) -> JobRecord:
    d = dict(zip(_JOB_COLUMNS, row))
    d["args"] = _lenient(d["args"], [])
    d["kwargs"] = _lenient(d["kwargs"], {})
    d["result"] = _lenient(d["result"], None)
    errors = _lenient(d["errors"], [])
    d["errors"] = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
    options = _lenient(d["options"], {})
    d["options"] = options if isinstance(options, dict) else {}
    d["state"] = JobState(d["state"])
    return JobRecord(**d)


def wrap(exc: BaseException, path: str) -> StoreError:
    """Translate an apsw error into a StoreError that says what to do."""
    if isinstance(exc, apsw.FullError):
        return StoreError(f"store {path} is full (disk or max_page_count): {exc}; free space and retry")
    if isinstance(exc, apsw.NotADBError):
        return StoreError(f"{path} is not a SQLite database (or is encrypted): refusing to touch it")
    if isinstance(exc, apsw.BusyError):
        return StoreError(f"store {path} stayed locked for {BUSY_TIMEOUT_MS // 1000}s: {exc}")
    if isinstance(exc, apsw.CantOpenError):
        return StoreError(f"cannot open store {path}: {exc}")
    return StoreError(f"store {path}: {type(exc).__name__}: {exc}")


def _check_file(path: str) -> bool:
    """Whether the store exists (and is a regular file). The header is left to SQLite: opening
    and closing the file here would drop every POSIX lock this process holds on it (SQLite's
    own included), so a non-database is refused by SQLite's first read, which writes nothing."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{path} is not a regular file")
    if 0 < st.st_size < 512:  # smaller than any SQLite page; SQLite would take it as empty
        raise StoreError(f"{path} is not a SQLite database ({st.st_size} bytes): "
                         "refusing to touch it")
    return True


_warned: set[str] = set()


def _warn_if_shared(path: str) -> None:
    """A store in a folder others may write to can be replaced or removed under us (and its
    -wal/-shm created by them): allowed, but said once per folder."""
    folder = os.path.dirname(path)
    try:
        mode = os.stat(folder).st_mode
    except OSError:
        return
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and folder not in _warned:
        _warned.add(folder)
        log.warning("store folder %s is writable by others (mode %o): anyone there could "
                    "replace or delete the job store; keep it in a 0700 folder",
                    folder, stat.S_IMODE(mode))


def _create_private(path: str) -> None:
    """A new store is 0600 in a 0700 folder: jobs carry user data. -wal/-shm follow the file."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
    except FileExistsError:
        pass


class SqliteStore:
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
        exists = _check_file(self.path)
        _warn_if_shared(self.path)
        if readonly and not exists:
            raise StoreError(f"store {self.path} does not exist")
        if not exists:
            _create_private(self.path)
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
                row = conn.execute(find, {"key": j.key}).fetchone()
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
        if conn.execute("SELECT count(*) FROM jobs WHERE id BETWEEN ? AND ?",
                        (first, last)).get != len(jobs):  # a rowid past 2**63 is random
            raise StoreError("could not determine the ids of the new jobs")
        return ids

    def enqueue(self, jobs: list[NewJob], *, connection: Any = None, now: float) -> list[int]:
        """Insert jobs in one transaction; with `connection`, inside the caller's own."""
        if connection is not None:
            return enqueue_in(connection, jobs, now=now, path=self.path)
        with self.write() as conn:
            return self._insert(conn, jobs, now)

    # -- the worker's round: record outcomes, promote, acquire ---------------------------
    def tick(self, outcomes: list[Outcome], wants: dict[str, int], holder: str, *, now: float,
             lease: float, full: bool = True, paused: frozenset[str] = frozenset(),
             next_due: float | None = None, limits: Limits | None = None,
             limited: frozenset[str] = frozenset()) -> Tick:
        """One round in one transaction: record outcomes, then claim up to `wants`.

        A full round also promotes due jobs and reads paused queues and the next due time;
        a light one (between outcomes under load) trusts the caller's `paused`/`next_due`."""
        claims: list[Claim] = []
        recorded = 0
        with self.write() as conn:
            if outcomes:
                recorded = self._record(conn, outcomes, now)
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
                if limits is not None and queue in limited:
                    rows, wait = self._acquire_limited(conn, args, limits)
                    if wait is not None:
                        retry_in = wait if retry_in is None else min(retry_in, wait)
                else:
                    rows = list(conn.execute(acquire, args))
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
            if full:
                next_due = conn.execute(Q["next_due"]).get
        return Tick(claims, next_due, recorded, paused, retry_in)

    def _acquire_limited(self, conn: apsw.Connection, args: dict[str, Any], limits: Limits
                         ) -> tuple[list[tuple[Any, ...]], float | None]:
        """Claim within key caps and rate limits, keys served round robin (see limits.py)."""
        queue, budget, now = args["queue"], args["limit"], args["now"]
        heads: dict[str | None, list[Candidate]] = {}
        keys = [None] + [r[0] for r in conn.execute(Q["ready_keys"], {"queue": queue})]
        for ckey in keys:
            heads[ckey] = [Candidate(*r) for r in conn.execute(
                Q["ready_of_key"], {"queue": queue, "ckey": ckey, "limit": budget})]
        if not heads[None]:
            del heads[None]
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

    def _record(self, conn: apsw.Connection, outcomes: list[Outcome], now: float) -> int:
        done = []
        failed = []
        released = []
        for o in outcomes:
            if o.state == "succeeded":
                done.append({"id": o.id, "token": o.token, "result": o.result, "now": now})
            elif o.state == "released":
                released.append({"id": o.id, "token": o.token})
            else:
                finished = now if o.state in ("dead", "cancelled") else None
                failed.append({"id": o.id, "token": o.token, "state": o.state,
                               "run_at": o.run_at if o.run_at is not None else now,
                               "finished_at": finished, "error": json.dumps(o.error or {})})
        before = conn.total_changes()
        if done:
            conn.executemany(Q["complete"], done)
        if failed:
            conn.executemany(Q["fail"], failed)
        if released:
            conn.executemany(Q["release"], released)
        return int(conn.total_changes() - before)

    def record(self, outcomes: list[Outcome], *, now: float) -> int:
        """Record outcomes alone (a drain, or a result arriving after claims stopped)."""
        with self.write() as conn:
            return self._record(conn, outcomes, now)

    # -- leases ---------------------------------------------------------------------------
    def extend(self, holder: str, *, now: float, lease: float) -> int:
        with self.write() as conn:
            conn.execute(Q["extend_holder"], {"holder": holder, "lease_until": now + lease})
            return int(conn.changes())

    def extend_job(self, job_id: int, token: int, *, now: float, lease: float) -> bool:
        with self.write() as conn:
            row = conn.execute(Q["extend_job"], {"id": job_id, "token": token,
                                                 "lease_until": now + lease}).fetchone()
        return row is not None

    def running_holders(self) -> list[str]:
        return [r[0] for r in self.read(Q["running_holders"]) if r[0] is not None]

    def expired_leases(self, *, now: float) -> list[tuple[int, str]]:
        return [(r[0], r[1]) for r in self.read(Q["expired_leases"], {"now": now})]

    def rescue(self, holder: str, reason: str, *, now: float) -> list[tuple[Any, ...]]:
        """Put a dead holder's running jobs back (attempt counted), or dead if exhausted."""
        error = json.dumps({"at": now, "type": "WorkerLost", "message": reason, "attempt": None})
        with self.write() as conn:
            return list(conn.execute(Q["rescue_holder"], {"holder": holder, "now": now,
                                                          "error": error}))

    def rescue_job(self, job_id: int, reason: str, *, now: float) -> list[tuple[Any, ...]]:
        error = json.dumps({"at": now, "type": "LeaseExpired", "message": reason, "attempt": None})
        with self.write() as conn:
            return list(conn.execute(Q["rescue_job"], {"id": job_id, "now": now, "error": error}))

    # -- reads and operator actions -----------------------------------------------------
    def acquire_id(self, job_id: int, holder: str, *, now: float, lease: float) -> Claim | None:
        """Claim one given job (inline mode), whatever its run_at."""
        with self.write() as conn:
            r = conn.execute(Q["acquire_id"], {"id": job_id, "holder": holder, "now": now,
                                               "lease_until": now + lease}).fetchone()
        if r is None:
            return None
        return Claim(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), r[5], r[6], r[7],
                     r[8], r[9], json.loads(r[10]))

    def get(self, job_id: int) -> JobRecord | None:
        rows = self.read(Q["get_job"], {"id": job_id})
        return row_to_record(rows[0]) if rows else None

    def status(self, job_id: int) -> tuple[Any, ...] | None:
        rows = self.read(Q["job_status"], {"id": job_id})
        return rows[0] if rows else None

    def list_jobs(self, *, state: str | None = None, queue: str | None = None,
             limit: int = 50) -> list[JobRecord]:
        rows = self.read(Q["list_jobs"], {"state": state, "queue": queue, "limit": limit})
        return [row_to_record(r) for r in rows]

    def cancel(self, job_id: int, *, now: float) -> str | None:
        """Cancel a waiting job at once; a running one is marked so its holder stops it.

        Returns the state the job was in, or None when it does not exist."""
        with self.write() as conn:
            row = conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            if row[0] in ("scheduled", "queued", "retrying"):
                conn.execute(Q["cancel_waiting"], {"id": job_id, "now": now})
            elif row[0] == "running":
                conn.execute(Q["cancel_running"], {"id": job_id, "now": now})
            return str(row[0])

    def retry(self, job_id: int | None, *, now: float) -> list[int]:
        with self.write() as conn:
            if job_id is None:
                return [r[0] for r in conn.execute(Q["retry_dead"], {"now": now})]
            return [r[0] for r in conn.execute(Q["retry_job"], {"id": job_id, "now": now})]

    def prune(self, before: float, states: tuple[str, ...] = ("succeeded", "cancelled", "dead"),
              *, batch: int = 500) -> int:
        """Delete finished jobs in `states` older than `before`, in small batches (short locks)."""
        total = 0
        for i in range(0, len(states), 2):
            total += self._prune(before, states[i], states[i + 1] if i + 1 < len(states) else None,
                                 batch)
        return total

    def _prune(self, before: float, state: str, state2: str | None, batch: int) -> int:
        total = 0
        while True:
            with self.write() as conn:
                conn.execute(Q["prune_finished"], {"before": before, "limit": batch,
                                                   "state": state, "state2": state2})
                n = int(conn.changes())
            total += n
            if n < batch:
                return total

    def set_paused(self, queue: str, paused: bool) -> None:
        with self.write() as conn:
            conn.execute(Q["set_paused"], {"name": queue, "paused": int(paused)})

    def paused(self) -> frozenset[str]:
        return frozenset(r[0] for r in self.read(Q["paused_queues"]))


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
