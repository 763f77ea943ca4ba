"""The PostgreSQL store (psycopg 3, a connection pool): the same contract as the SQLite
store, for services on several hosts sharing one database.

Every write is one transaction on a pooled connection; claims take rows with
`FOR UPDATE SKIP LOCKED`, so rounds of many services never queue behind each other; caps and
rate buckets, which must count across services, serialize the rounds of one queue with a
transaction-level advisory lock. The schema version lives in `schema_version`. Importing
this module imports psycopg: `open_store` does so only for a `postgresql://` location.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row

from ..errors import StoreError
from ..limits import Limits
from ..model import Claim, NewJob, Outcome, error_entry
from . import rows
from .contract import AttemptState, DashboardRead, Expired, Rescued, Round, Store
from .postgres_locks import AdvisoryLocks
from .postgres_ops import PgCatalog, PgOperator
from .postgres_pool import Conn, Pool
from .postgres_rounds import acquire_round, queue_locks, record
from .postgres_sql import PQ, SCHEMA_VERSION, STEPS, insert, redact, sql, wrap
from .postgres_workflows import PgWorkflows
from .queries import parse, read_sql

#: The dashboard's named reads (DashboardStore): dashboard.sql's names and columns.
DASHBOARD = parse(read_sql("postgres_dashboard.sql"))

#: Seconds a connection attempt may take (unless the URL sets connect_timeout): an operator
#: command against a server that is down or unreachable fails in one line, soon.
CONNECT_TIMEOUT = 5

#: What the server says as it ends a session at an interrupt point or while idle
#: (admin_shutdown: pg_terminate_backend or a shutdown; idle_session_timeout): the statement
#: it ran rolled back or never ran. A crash (57P02) may come after a commit: not here.
ENDED = frozenset({"57P01", "57P05"})

T = TypeVar("T")


class PostgresStore(PgWorkflows, PgOperator, PgCatalog, Store):
    """The store contract on one PostgreSQL database. Thread-safe: a pool of connections."""

    def __init__(self, location: str, *, durability: str = "normal", readonly: bool = False,
                 pool_size: int = 8) -> None:
        if durability not in ("normal", "full"):
            raise StoreError(f"durability must be 'normal' or 'full', not {durability!r}")
        self.path = location  # what callers reopen the store with (service, scheduler)
        self.shown = redact(location)  # what messages show: no password
        self.readonly = readonly
        # durability full: every commit waits for its WAL flush, whatever the server's
        # default; normal keeps the server's own synchronous_commit (never weakened here).

        def configure(conn: psycopg.Connection[Any]) -> None:
            if durability == "full":
                conn.execute(sql(PQ["durability_full"]))
            if readonly:  # a reader (jobrun top, status) cannot write by mistake
                conn.execute(sql(PQ["read_only"]))

        kwargs: dict[str, Any] = {"autocommit": True}
        try:
            given = psycopg.conninfo.conninfo_to_dict(location)
        except psycopg.ProgrammingError as exc:
            raise StoreError(f"store {self.shown}: not a PostgreSQL URL ({exc})") from exc
        if "application_name" not in given:
            kwargs["application_name"] = "jobrun"  # what pg_stat_activity shows
        if "connect_timeout" not in given:
            kwargs["connect_timeout"] = CONNECT_TIMEOUT
        self.pool = Pool(location, self.shown, max_size=pool_size, kwargs=kwargs,
                         configure=configure)
        try:  # one connection first: a server down is one line at once
            self.pool.open()
        except psycopg.Error as exc:
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StoreError(f"store {self.shown}: could not connect to the PostgreSQL server ({why})"
                             ) from exc
        try:
            self.migrate()
        except BaseException:
            self.pool.close()
            raise
        #: Session-level advisory locks this process holds (holder liveness, cron leadership).
        self.locks = AdvisoryLocks(location, self.shown,
                                   {k: v for k, v in kwargs.items() if k == "connect_timeout"})

    # -- connections and transactions -----------------------------------------------------
    def migrate(self) -> int:
        """Bring the schema to SCHEMA_VERSION (openers one at a time); the version found. A
        newer schema is refused and left untouched; a reader only checks."""
        if self.readonly:
            there = self.read(PQ["schema_exists"])[0][0]
            found = int(self.read(PQ["schema_get"])[0][0] or 0) if there else 0
            if found == 0:
                raise StoreError(f"store {self.shown} does not exist (no jobrun schema there)")
            self._refuse_newer(found)
            return found
        with self.write() as conn:
            conn.execute(sql(PQ["schema_lock"]))
            conn.execute(sql(PQ["schema_init"]))
            row = conn.execute(sql(PQ["schema_get"])).fetchone()
            found = int(row[0]) if row and row[0] is not None else 0
            self._refuse_newer(found)
            for version in range(found + 1, SCHEMA_VERSION + 1):
                conn.execute(sql(STEPS[version]))
            if found < SCHEMA_VERSION:
                conn.execute(sql(PQ["schema_clear"]))
                conn.execute(sql(PQ["schema_set"]), {"version": SCHEMA_VERSION})
        return found

    def _refuse_newer(self, found: int) -> None:
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.shown} has schema version {found}, newer than this jobrun "
                f"knows ({SCHEMA_VERSION}): upgrade jobrun; the database was not touched")

    @contextlib.contextmanager
    def write(self) -> Iterator[Conn]:
        """One transaction on a pooled connection; psycopg errors come out as StoreError.
        The verbs of this class use `transact` instead: it can run its body once more."""
        try:
            with self.pool.connection() as conn, conn.transaction():
                yield conn
        except psycopg.Error as exc:
            raise wrap(exc, self.shown) from exc

    def transact(self, body: Callable[[Conn], T]) -> T:
        """`body(conn)` in one transaction. A connection that broke before the COMMIT was
        sent (its backend terminated, the server restarted) committed nothing: the body runs
        once more on a connection checked with a round trip."""
        for again in (False, True):
            conn, sent = self._lend(again), False
            try:
                with conn.transaction():
                    out = body(conn)
                    sent = True  # leaving the block sends the COMMIT
                return out
            except psycopg.OperationalError as exc:
                if again or sent or not conn.closed:
                    raise wrap(exc, self.shown) from exc
            except psycopg.Error as exc:
                raise wrap(exc, self.shown) from exc
            finally:
                self.pool.putconn(conn)
        raise AssertionError("unreachable")

    def alone(self, run: Callable[[Conn], T], *, writes: bool) -> T:
        """`run(conn)`: one statement in autocommit. A read whose connection broke runs once
        more; a write only if the server said it ended the session (ENDED): it does so at an
        interrupt point, never between a commit and its reply, so nothing was written."""
        for again in (False, True):
            conn = self._lend(again)
            try:
                return run(conn)
            except psycopg.OperationalError as exc:
                if again or not conn.closed or (writes and exc.sqlstate not in ENDED):
                    raise wrap(exc, self.shown) from exc
            except psycopg.Error as exc:
                raise wrap(exc, self.shown) from exc
            finally:
                self.pool.putconn(conn)
        raise AssertionError("unreachable")

    def _lend(self, checked: bool) -> Conn:
        try:
            return self.pool.getconn(checked=checked)
        except psycopg.Error as exc:  # a new connection refused
            raise wrap(exc, self.shown) from exc

    def read(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        return self.alone(lambda conn: conn.execute(
            sql(query), params if params is not None else {}).fetchall(), writes=False)

    @contextlib.contextmanager
    def dashboard(self) -> Iterator[DashboardRead]:
        def read(name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
            with conn.cursor(row_factory=dict_row) as cur:
                return cur.execute(sql(DASHBOARD[name]), params).fetchall()

        try:
            with self.pool.connection() as conn, conn.transaction():
                conn.execute(sql(PQ["snapshot_read"]))
                yield read
        except psycopg.Error as exc:
            raise wrap(exc, self.shown) from exc

    def schema(self) -> tuple[int, int]:
        return int(self.read(PQ["schema_get"])[0][0] or 0), SCHEMA_VERSION

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.locks.close()
        with contextlib.suppress(Exception):
            self.pool.close()

    def holder_alive(self, holder: str) -> bool:
        """Whether the service `holder` still holds its liveness lock, on any host."""
        return self.lock_is_held("holder", holder)

    # -- enqueue ------------------------------------------------------------------------------
    def enqueue(self, jobs: list[NewJob], *, connection: Any = None, now: float) -> list[int]:
        if not jobs:
            return []
        if connection is not None:
            try:
                return insert(self.caller(connection), jobs, now)
            except psycopg.Error as exc:
                raise wrap(exc, self.shown) from exc
        if all(j.key is None for j in jobs):
            # One INSERT statement (insert_job, insert_jobs) and its NOTIFY: atomic by itself,
            # so it runs without BEGIN and COMMIT, in one round trip.
            return self.alone(lambda conn: insert(conn, jobs, now), writes=True)
        return self.transact(lambda conn: insert(conn, jobs, now))

    # -- the worker's round ---------------------------------------------------------------
    def acquire_round(self, outcomes: list[Outcome], wants: dict[str, int], holder: str, *,
                      now: float, lease: float, full: bool = True,
                      paused: frozenset[str] = frozenset(), next_due: float | None = None,
                      limits: Limits | None = None, limited: frozenset[str] = frozenset(),
                      tasks: frozenset[str] | None = None, ahead: dict[str, int] | None = None,
                      began: list[tuple[int, int, float]] | None = None) -> Round:
        queues = queue_locks(wants, ahead, limits, limited)

        def body(conn: Conn) -> Round:
            lock_in_order(conn, outcomes, always=len(queues) > 1,
                          began=[b[0] for b in began or ()])
            if len(queues) > 1:  # rows first, then queues: the order of any other round
                conn.execute(sql(PQ["queue_locks"]), {"queues": queues})
            return acquire_round(conn, outcomes, wants, holder, now=now, lease=lease,
                                 full=full, paused=paused, next_due=next_due, limits=limits,
                                 limited=limited, tasks=tasks, ahead=ahead, began=began)
        return self.transact(body)

    def record(self, outcomes: list[Outcome], *, now: float) -> int:
        return len(self.record_outcomes(outcomes, now=now))

    def record_outcomes(self, outcomes: list[Outcome], *, now: float) -> frozenset[int]:
        if not outcomes:
            return frozenset()

        def body(conn: Conn) -> frozenset[int]:
            lock_in_order(conn, outcomes)
            return record(conn, outcomes, now)
        return self.transact(body)

    def attempt_states(self, ids: list[int]) -> dict[int, AttemptState]:
        return {r[0]: AttemptState(r[1], r[2])
                for r in self.read(PQ["attempt_states"], {"ids": ids})}

    # -- cron -----------------------------------------------------------------------------
    def last_fire(self, entry: str) -> float | None:
        found = self.read(PQ["last_fire"], {"entry": entry})
        return found[0][0] if found else None

    def fire(self, entry: str, fire_at: float, job: Callable[[], NewJob], *, now: float
             ) -> int | None:
        def body(conn: Conn) -> int | None:
            row = conn.execute(sql(PQ["insert_fire"]),
                               {"entry": entry, "fire_at": fire_at}).fetchone()
            if row is None:
                return None  # fired already (another leader overlapped)
            (job_id,) = insert(conn, [job()], now)
            conn.execute(sql(PQ["set_fire_job"]),
                         {"entry": entry, "fire_at": fire_at, "job_id": job_id})
            return job_id
        return self.transact(body)

    # -- leases ---------------------------------------------------------------------------
    def extend_leases(self, holder: str, *, now: float, lease: float) -> int:
        def body(conn: Any) -> int:
            params = {"holder": holder, "lease_until": now + lease}
            renewed = int(conn.execute(sql(PQ["extend_holder"]), params).rowcount)
            conn.execute(sql(PQ["extend_letting_go"]), params)  # cancelled, still running
            return renewed
        return self.transact(body)

    def extend_lease(self, job_id: int, token: int, *, now: float, lease: float) -> bool:
        return self.transact(lambda conn: conn.execute(sql(PQ["extend_job"]), {
            "id": job_id, "token": token, "lease_until": now + lease}).fetchone() is not None)

    def running_holders(self) -> list[str]:
        return [r[0] for r in self.read(PQ["running_holders"]) if r[0] is not None]

    def expired_leases(self, *, now: float) -> list[Expired]:
        return [Expired(r[0], r[1]) for r in self.read(PQ["expired_leases"], {"now": now})]

    def rescue_holder(self, holder: str, reason: str, *, now: float,
                      begun: frozenset[int] | None = None) -> list[Rescued]:
        head = _error_head("WorkerLost", reason, now)
        def body(conn: Any) -> list[Rescued]:
            unspent = [] if begun is None else [
                i for i, token in conn.execute(sql(PQ["held_of_holder"]), {"holder": holder})
                if token not in begun]
            rescued = [Rescued(i, t, q, a, s, bool(u)) for i, t, q, a, s, u in conn.execute(
                sql(PQ["rescue_holder"]), {"holder": holder, "now": now, "error_head": head,
                                           "unspent": unspent})]
            conn.execute(sql(PQ["let_go_holder"]), {"holder": holder})  # its cancelled ones
            return rescued
        return self.transact(body)

    def rescue_expired(self, job_id: int, reason: str, *, now: float) -> list[Rescued]:
        head = _error_head("LeaseExpired", reason, now)
        def body(conn: Any) -> list[Rescued]:
            rescued = [Rescued(i, t, q, a, s) for i, t, q, a, s, _ in conn.execute(
                sql(PQ["rescue_job"]), {"id": job_id, "now": now, "error_head": head})]
            conn.execute(sql(PQ["let_go_expired"]), {"id": job_id, "now": now})
            return rescued
        return self.transact(body)

    def acquire_job(self, job_id: int, holder: str, *, now: float, lease: float
                    ) -> Claim | None:
        r = self.transact(lambda conn: conn.execute(sql(PQ["acquire_id"]), {
            "id": job_id, "holder": holder, "now": now, "lease_until": now + lease}).fetchone())
        return None if r is None else rows.claim(r)

    def lock_is_held(self, kind: str, name: str) -> bool:
        """Whether any session (any host) holds the advisory lock `kind`/`name`."""
        found = self.read(PQ["lock_held"], {"kind": kind, "name": name})
        if not found:
            raise StoreError(f"store {self.shown}: no answer about lock {kind}/{name}")
        return bool(found[0][0])


def lock_in_order(conn: Conn, outcomes: list[Outcome], *, always: bool = False,
                  began: list[int] | None = None) -> None:
    """Lock the rows of outcomes of more than one kind in id order before writing any:
    record() writes kind by kind (successes, then failures ...), and a round that locked 9
    then 3 deadlocked with a renewal or a rescue locking 3 then 9 (issue 16). One kind alone
    is written in id order already (unless `always`: a round locking its queues first).
    Held attempts that `began` are written before the outcomes: their rows are locked with
    theirs."""
    ids = {o.id for o in outcomes} | set(began or ())
    if ids and (always or (began and len(ids) > 1)
                or len({KIND.get(o.state, "failed") for o in outcomes}) > 1):
        conn.execute(sql(PQ["lock_ids"]), {"ids": sorted(ids)})


#: How record() groups outcomes (rows.outcome_params): each group is written in id order.
KIND = {"succeeded": "done", "released": "released", "suspended": "suspended"}


def _error_head(kind: str, reason: str, now: float) -> str:
    """A rescue's error entry as JSON without its closing brace and attempt: the query
    appends each job's own attempt (postgres.sql, rescue_holder)."""
    entry = dict(error_entry(kind, reason, None, now))
    entry.pop("attempt", None)
    return json.dumps(entry)[:-1]
