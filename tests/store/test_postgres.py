"""What only the PostgreSQL store must show (the contract suite covers the rest): psycopg
stays out of a SQLite user's process, the schema is versioned, `connection=` joins the
caller's transaction, concurrent rounds never hand out a job twice, and without a server
the tests skip saying how to run them (or fail with $CI set)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jobrun.errors import StoreError
from jobrun.model import Outcome
from jobrun.store import open_store
from jobrun.store.contract import Store
from support.postgres import fresh_store_url

if TYPE_CHECKING:
    import psycopg

T0 = 1_000_000.0
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_store_url() as u:
        yield u


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    s = open_store(url)
    yield s
    s.close()


def _job(task: str = "t:a", key: str | None = None, queue: str = "default") -> object:
    from jobrun import catalog, enqueue
    from jobrun.config import Settings
    d = catalog.resolve(None, None, None, Settings(), queue)
    return enqueue.new_job(task, [1], {}, {"key": key}, T0, d)


def test_import_jobrun_leaves_psycopg_out() -> None:
    code = ("import sys, jobrun, jobrun.store, jobrun.cli; "
            "from jobrun.store import open_store; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', "
            "'psycopg_pool', 'psycopg_binary')); print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_messages_never_show_a_password() -> None:
    """Written before the @ or as a URL parameter (libpq takes both)."""
    from jobrun.store.postgres_sql import redact

    assert redact("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db?password=s3cret&sslmode=require") == \
        "postgresql://u@h/db?password=***&sslmode=require"
    assert "s3cret" not in redact("postgresql://h/db?sslmode=prefer&PASSWORD=s3cret")


def test_the_schema_is_versioned_and_a_newer_one_refused(url: str) -> None:
    import psycopg
    s = open_store(url)
    (job_id,) = s.enqueue([_job()], now=T0)  # type: ignore[list-item]
    s.close()
    s = open_store(url)  # reopened: migrated already, the job kept
    assert s.get(job_id) is not None
    with s.write() as conn:  # type: ignore[attr-defined]
        conn.execute("UPDATE schema_version SET version = version + 1")
    s.close()
    with pytest.raises(StoreError, match="newer than this jobrun"):
        open_store(url)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (1,)


def test_enqueue_and_send_event_join_the_callers_transaction(store: Store, url: str) -> None:
    import psycopg
    with psycopg.connect(url) as conn:
        with pytest.raises(StoreError, match="open transaction"):
            store.enqueue([_job()], connection=conn, now=T0)  # type: ignore[list-item]
        with conn.transaction():
            conn.execute("SELECT 1")
            (kept,) = store.enqueue([_job()], connection=conn, now=T0)  # type: ignore[list-item]
            store.send_event("e", "1", connection=conn, now=T0)
        assert store.get(kept) is not None
        with pytest.raises(RuntimeError), conn.transaction():
            (gone,) = store.enqueue([_job()], connection=conn, now=T0)  # type: ignore[list-item]
            raise RuntimeError("the caller's transaction rolls back")
    assert store.get(gone) is None
    assert gone > kept  # its id is not given again
    (after,) = store.enqueue([_job()], now=T0)  # type: ignore[list-item]
    assert after > gone


def test_concurrent_rounds_never_hand_out_a_job_twice(store: Store) -> None:
    n = 1200
    store.enqueue([_job() for _ in range(n)], now=T0)  # type: ignore[misc]
    got: list[list[int]] = [[] for _ in range(6)]

    start = threading.Barrier(6)

    def worker(i: int) -> None:
        mine: list[Outcome] = []
        start.wait(30)  # all six rounds begin together
        while True:
            r = store.acquire_round(mine, {"default": 7}, f"h{i}", now=T0 + 1, lease=60)
            if not r.claims:
                return
            got[i].extend(c.id for c in r.claims)
            mine = [Outcome(c.id, c.token, "succeeded", result="1") for c in r.claims]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    every = [j for g in got for j in g]
    assert len(every) == len(set(every)) == n
    assert sum(1 for g in got if g) > 1  # the rounds really ran side by side


def test_concurrent_enqueues_of_one_key_make_one_job(store: Store) -> None:
    ids: list[int] = []
    lock = threading.Lock()

    def producer() -> None:
        for _ in range(20):
            (i,) = store.enqueue([_job(key="k")], now=T0)  # type: ignore[list-item]
            with lock:
                ids.append(i)

    threads = [threading.Thread(target=producer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(set(ids)) == 1 and store.counts() == {"queued": 1}


def test_without_a_server_the_tests_skip_saying_how_and_fail_under_ci() -> None:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["JOBRUN_TEST_PG"] = "postgresql://postgres@127.0.0.1:1/test"  # nothing listens there
    args = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
            "tests/store/test_contract.py::test_paused_queues_are_not_claimed"]
    out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stdout
    assert "1 passed, 1 skipped" in out.stdout and "To run them" in out.stdout
    out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT,
                         env={**env, "CI": "1"}, timeout=120)
    assert out.returncode != 0 and "CI is set" in out.stdout


def test_a_reader_cannot_write_and_needs_a_store_set_up(url: str) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        open_store(url, readonly=True)
    open_store(url).close()
    reader = open_store(url, readonly=True)
    try:
        assert reader.counts() == {}
        with pytest.raises(StoreError, match="read-only"):
            reader.enqueue([_job()], now=T0)  # type: ignore[list-item]
    finally:
        reader.close()


def test_a_terminated_backend_costs_no_operation(store: Store, url: str) -> None:
    """A server restart or a killed backend leaves dead connections in the pool: each is
    checked when taken, so the next operation gets a live one instead of an error."""
    import psycopg

    from jobrun.store.postgres import PostgresStore
    assert isinstance(store, PostgresStore)
    store.enqueue([_job()], now=T0)  # type: ignore[list-item]
    with store.pool.connection() as conn:
        pid = conn.info.backend_pid  # the pool's one idle connection (min_size 1)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    assert store.counts() == {"queued": 1}
    store.enqueue([_job()], now=T0)  # type: ignore[list-item]
    assert store.counts() == {"queued": 2}


def test_a_batch_gets_its_ids_in_the_order_given(store: Store) -> None:
    batch = [_job(f"t:{i}") for i in range(300)]
    ids = store.enqueue(batch, now=T0)  # type: ignore[arg-type]
    assert ids == sorted(ids) and len(set(ids)) == 300
    assert all(store.get(i).task == f"t:{n}" for n, i in enumerate(ids))  # type: ignore[union-attr]


def test_a_holders_liveness_lock_is_seen_from_another_store_and_freed_with_its_backend(
        url: str) -> None:
    import psycopg

    from jobrun.store.postgres import PostgresStore
    a, b = PostgresStore(url), PostgresStore(url)
    try:
        assert not b.holder_alive("h1")
        assert a.locks.take("holder", "h1") and a.locks.take("holder", "h1")
        assert not b.locks.take("holder", "h1")  # held by a's session
        assert b.holder_alive("h1") and not b.holder_alive("h2")
        pid = a.locks._held[("holder", "h1")].info.backend_pid
        with psycopg.connect(url, autocommit=True) as admin:  # a's host is cut off
            admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))  # and gone
        assert not b.holder_alive("h1")  # seen at once, no lease to wait out
        assert not a.locks.still_held("holder", "h1")
        assert b.locks.take("holder", "h1")
        b.locks.let_go("holder", "h1")
        assert not a.holder_alive("h1")
    finally:
        a.close()
        b.close()


def _flow_with_child(store: Store) -> tuple[object, object]:
    from jobrun.store.contract import StepRecord
    store.enqueue([_job("t:flow")], now=T0)  # type: ignore[list-item]
    (p,) = store.acquire_round([], {"default": 1}, "h1", now=T0, lease=60).claims
    store.start_children(p.id, p.token, StepRecord(1, "g", "gather", "waiting"),
                         [_job("t:kid")], fanin=True, now=T0)  # type: ignore[list-item]
    (c,) = store.acquire_round([], {"default": 1}, "h2", now=T0, lease=60).claims
    return p, c


def test_a_child_finishing_while_its_parent_suspends_still_wakes_it(store: Store,
                                                                    url: str) -> None:
    """Found by reading: on SQLite writers take turns; here the child's transaction and the
    parent's suspension overlap, and each read the other as not done yet (a lost wake-up,
    the parent waiting out its timeout). The child's wake locks the parent's row first and
    the suspension reads after taking it, so one of them always sees the other."""
    import psycopg

    from jobrun.store.postgres_sql import PQ
    p, c = _flow_with_child(store)
    with psycopg.connect(url) as child_tx:  # the child's round, its transaction left open
        child_tx.execute(PQ["complete"], {"id": c.id, "token": c.token,  # type: ignore[attr-defined]
                                          "result": "1", "now": T0 + 1})
        t = threading.Thread(target=store.record, args=(
            [Outcome(p.id, p.token, "suspended", run_at=T0 + 900)],), kwargs={"now": T0 + 2})  # type: ignore[attr-defined]
        t.start()
        t.join(1.0)  # the suspension waits for the child's transaction (it does with the fix)
        child_tx.commit()
    t.join(10)
    rec = store.get(p.id)  # type: ignore[attr-defined]
    assert rec is not None and rec.state == "scheduled" and rec.run_at <= T0 + 2, rec


def test_an_event_sent_while_its_workflow_suspends_still_wakes_it(store: Store,
                                                                  url: str) -> None:
    import psycopg

    from jobrun.store.contract import StepRecord
    from jobrun.store.postgres_sql import PWQ
    store.enqueue([_job("t:flow")], now=T0)  # type: ignore[list-item]
    (w,) = store.acquire_round([], {"default": 1}, "h1", now=T0, lease=60).claims
    assert store.wait_event(w.id, w.token, StepRecord(1, "e", "event", "waiting", waits="go"),
                            now=T0)[0] == "waiting"
    with psycopg.connect(url) as send_tx:  # a producer's transaction, left open
        send_tx.execute(PWQ["insert_event"], {"name": "go", "payload": "1", "now": T0 + 1})
        t = threading.Thread(target=store.record, args=(
            [Outcome(w.id, w.token, "suspended", run_at=T0 + 900)],), kwargs={"now": T0 + 2})
        t.start()
        t.join(1.0)
        send_tx.commit()
    t.join(10)
    rec = store.get(w.id)
    assert rec is not None and rec.state == "scheduled" and rec.run_at <= T0 + 2, rec


def test_a_round_recording_mixed_outcomes_never_deadlocks_with_a_renewal(url: str) -> None:
    """Found after connection cuts ("deadlock detected"): record() wrote successes, then
    failures, so a round holding row 9 waited for row 3 while the holder's renewal (or a
    rescue), locking in id order, held 3 and waited for 9. The rows are now locked in id
    order first. The interleaving is forced: a blocker holds row 3 while the renewal queues
    on it, then the round queues; the blocker lets go."""
    import psycopg

    from jobrun.store.postgres import PostgresStore
    name = "jobrun_dl_" + uuid.uuid4().hex[:8]
    store = PostgresStore(f"{url}&application_name={name}")
    try:
        store.enqueue([_job(), _job()], now=T0)  # type: ignore[list-item]
        low, high = sorted(store.acquire_round([], {"default": 2}, "h", now=T0, lease=60).claims,
                           key=lambda c: c.id)
        outcomes = [Outcome(high.id, high.token, "succeeded", result="1"),
                    Outcome(low.id, low.token, "retrying", run_at=T0 + 9, error={"m": "x"})]
        done: dict[str, object] = {}
        with psycopg.connect(url) as blocker:
            blocker.execute("SELECT id FROM jobs WHERE id = %s FOR UPDATE", (low.id,))
            renew = _run(done, "renew", lambda: store.extend_leases("h", now=T0 + 1, lease=60))
            _wait_for_lock_waiters(url, name, 1)
            rec = _run(done, "record", lambda: store.record(outcomes, now=T0 + 1))
            _wait_for_lock_waiters(url, name, 2)
            blocker.commit()
        renew.join(30)
        rec.join(30)
        assert done == {"renew": 2, "record": 2}, done
        assert store.counts() == {"succeeded": 1, "retrying": 1}
    finally:
        store.close()


def test_a_round_recording_an_outcome_and_a_start_never_deadlocks_with_a_renewal(url: str
                                                                                ) -> None:
    """As above, with held attempts: the round wrote its outcome (row 9), then the start of
    a held attempt (row 3), after it. Their rows are locked together, in id order, first."""
    import psycopg

    from jobrun.store.postgres import PostgresStore
    name = "jobrun_dl_" + uuid.uuid4().hex[:8]
    store = PostgresStore(f"{url}&application_name={name}")
    try:
        store.enqueue([_job(), _job()], now=T0)  # type: ignore[list-item]
        low, high = sorted(store.acquire_round([], {}, "h", now=T0, lease=60,
                                               ahead={"default": 2}).claims,
                           key=lambda c: c.id)
        done: dict[str, object] = {}
        with psycopg.connect(url) as blocker:
            blocker.execute("SELECT id FROM jobs WHERE id = %s FOR UPDATE", (low.id,))
            renew = _run(done, "renew", lambda: store.extend_leases("h", now=T0 + 1, lease=60))
            _wait_for_lock_waiters(url, name, 1)
            rec = _run(done, "round", lambda: store.acquire_round(
                [Outcome(high.id, high.token, "succeeded", result="1")], {}, "h", now=T0 + 1,
                lease=60, began=[(low.id, low.token, T0 + 0.5)]).recorded)
            _wait_for_lock_waiters(url, name, 2)
            blocker.commit()
        renew.join(30)
        rec.join(30)
        assert done == {"renew": 2, "round": 1}, done
        got = store.get(low.id)
        assert got is not None and (got.state, got.attempts) == ("running", 1)
    finally:
        store.close()


def test_held_claims_in_a_capped_queue_wait_for_its_lock(url: str) -> None:
    """Claims ahead of a capped queue count as running for every other round: they are made
    under the queue's lock, as counted ones, or a round counting concurrently would miss
    them. Forced: a blocker holds the lock; a round wanting nothing counted waits on it."""
    import psycopg

    from jobrun.limits import Limits
    from jobrun.store.postgres import PostgresStore
    name = "jobrun_cap_" + uuid.uuid4().hex[:8]
    store = PostgresStore(f"{url}&application_name={name}")
    try:
        store.enqueue([_job() for _ in range(3)], now=T0)  # type: ignore[misc]
        caps = Limits(caps={"default": 1})
        done: dict[str, object] = {}
        with psycopg.connect(url) as blocker:
            blocker.execute("SELECT pg_advisory_xact_lock(hashtext("
                            "'jobrun:' || current_schema() || ':queue:default'))")
            held = _run(done, "held", lambda: len(store.acquire_round(
                [], {}, "h1", now=T0, lease=60, limits=caps, ahead={"default": 2}).claims))
            _wait_for_lock_waiters(url, name, 1)
            blocker.commit()
        held.join(30)
        assert done == {"held": 2}, done
        assert store.acquire_round([], {"default": 1}, "h2", now=T0, lease=60,
                                   limits=caps).claims == []
    finally:
        store.close()


def test_rounds_taking_two_queue_locks_in_other_orders_never_deadlock(url: str) -> None:
    """Two services listing rate-limited queues in other orders: one took a's lock, read (and
    locked) a's bucket, then waited for b's lock, held by the other, waiting for a's. A
    round needing several queue locks now takes them first, in name order. Forced: a
    blocker holds a's bucket row while the first round has a's lock, the second b's."""
    import psycopg

    from jobrun.limits import Limits, Rate
    from jobrun.store.postgres import PostgresStore
    name = "jobrun_dl_" + uuid.uuid4().hex[:8]
    store = PostgresStore(f"{url}&application_name={name}")
    try:
        store.enqueue([_job(queue=q) for q in "aabbaabb"], now=T0)  # type: ignore[misc]
        limits = Limits(queue_rates={"a": Rate(1000, 1), "b": Rate(1000, 1)})
        limited = frozenset({"a", "b"})

        def round_(wants: dict[str, int], holder: str) -> Callable[[], object]:
            return lambda: len(store.acquire_round([], wants, holder, now=T0, lease=60,
                                                   limits=limits, limited=limited).claims)
        assert round_({"a": 1, "b": 1}, "h0")() == 2  # the buckets' rows are made
        done: dict[str, object] = {}
        with psycopg.connect(url) as blocker:
            blocker.execute("SELECT * FROM rate_buckets WHERE name = 'queue:a' FOR UPDATE")
            first = _run(done, "a then b", round_({"a": 1, "b": 1}, "h1"))
            _wait_for_lock_waiters(url, name, 1)
            second = _run(done, "b then a", round_({"b": 1, "a": 1}, "h2"))
            _wait_for_lock_waiters(url, name, 2)
            blocker.commit()
        first.join(30)
        second.join(30)
        assert done == {"a then b": 2, "b then a": 2}, done
    finally:
        store.close()


def _run(done: dict[str, object], what: str, call: Callable[[], object]) -> threading.Thread:
    """`call` in a thread; what it returned (or the StoreError it raised) in done[what]."""
    def target() -> None:
        try:
            done[what] = call()
        except StoreError as exc:
            done[what] = exc
    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t


def _wait_for_lock_waiters(url: str, app: str, n: int) -> None:
    import psycopg
    deadline = time.monotonic() + 20
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
                               " AND wait_event_type = 'Lock'", (app,)).fetchone()
            if row is not None and row[0] >= n:
                return
            time.sleep(0.02)
    raise AssertionError(f"{n} of the store's transactions never waited on a row lock")


@pytest.fixture
def own_database() -> Iterator[tuple[str, str]]:
    """A database of this test's own: its backends are the only ones a cutter may end."""
    from support.postgres import SERVER, require_server
    require_server()
    import psycopg
    name = "jobrun_cut_" + uuid.uuid4().hex[:10]
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield SERVER.rsplit("/", 1)[0] + "/" + name, name
    finally:
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_after_repeated_connection_cuts_the_store_serves_at_once(
        own_database: tuple[str, str]) -> None:
    """Issue 16: after ~10 s of backends terminated again and again, every service stalled
    ~30 s ("couldn't get a connection after 30 sec"): psycopg_pool's reconnection backed off
    1, 2, 4, 8 ... s while the callers waited. Cut this database's backends every 50 ms while
    threads enqueue, claim, renew and keep a liveness lock; each call ends soon (an error is
    fine while cutting), and once the cuts stop an enqueue and its claim are served."""
    import psycopg

    from jobrun.presence import presence_for
    from support.postgres import SERVER
    url, name = own_database
    store = open_store(url)
    stop_cutting, stop_work = threading.Event(), threading.Event()
    cuts = [0]

    def cutter() -> None:
        with psycopg.connect(SERVER, autocommit=True) as admin:  # not of the database cut
            while not stop_cutting.wait(0.05):
                cuts[0] += len(admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchall())

    def worker(i: int) -> None:
        mine: list[Outcome] = []
        alive = presence_for(store).liveness(f"h{i}")
        while not stop_work.is_set():
            try:
                if i == 0:
                    alive.keep()
                store.enqueue([_job(), _job()], now=T0)  # type: ignore[list-item]
                store.enqueue([_job()], now=T0)  # type: ignore[list-item]
                store.enqueue([_job(key=f"k{i}")], now=T0)  # type: ignore[list-item]
                r = store.acquire_round(mine, {"default": 3}, f"h{i}", now=T0 + 1, lease=60)
                mine = [Outcome(c.id, c.token, "succeeded", result="1") for c in r.claims]
                store.extend_leases(f"h{i}", now=T0 + 1, lease=60)
            except StoreError:
                mine = []

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(4)]
    cutting = threading.Thread(target=cutter, daemon=True)
    try:
        for t in [cutting, *workers]:
            t.start()
        stop_cutting.wait(4)  # a few seconds of cuts (the stimulus, not a wait for a state)
        stop_cutting.set()
        cutting.join(10)
        assert cuts[0] >= 20, cuts  # backends were made and ended again and again
        stop_work.set()
        for t in workers:
            t.join(10)
        assert not any(t.is_alive() for t in workers), "a call still waits for a connection"

        served: list[bool] = []

        def serve() -> None:
            (job_id,) = store.enqueue([_job("t:after")], now=T0 + 2)  # type: ignore[list-item]
            r = store.acquire_round([], {"default": 10_000}, "late", now=T0 + 3, lease=60)
            served.append(job_id in {c.id for c in r.claims})
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        t.join(5)
        assert served == [True]
    finally:
        stop_cutting.set()
        stop_work.set()
        store.close()


def test_a_single_enqueue_is_one_round_trip(store: Store, tmp_path: Path) -> None:
    """The pool lends an idle connection whose socket is quiet without asking the server
    (psycopg_pool's check was a round trip of its own); the insert and its NOTIFY are one
    statement without BEGIN and COMMIT. libpq's trace of the pooled connection shows one
    Sync (one exchange) per enqueue and no other message sent."""
    from jobrun.store.postgres import PostgresStore
    assert isinstance(store, PostgresStore)
    trace = tmp_path / "trace.txt"
    for _ in range(6):  # psycopg prepares the statement at its 6th run (once: a round trip)
        store.enqueue([_job()], now=T0)  # type: ignore[list-item]
    with open(trace, "w") as f:
        with store.pool.connection() as conn:  # its only connection, given back traced
            conn.pgconn.trace(f.fileno())
        for _ in range(6):
            store.enqueue([_job()], now=T0)  # type: ignore[list-item]
        with store.pool.connection() as again:
            assert again is conn
            conn.pgconn.untrace()
    lines = [line.split("\t") for line in trace.read_text().splitlines()]
    sent = [f[f.index("F") + 2] for f in lines if "F" in f[:2]]  # (time,) F, length, message
    assert sent == ["Bind", "Describe", "Execute", "Sync"] * 6, sent
    assert store.counts() == {"queued": 12}


def _terminate_when_running(url: str, marker: str) -> threading.Thread:
    """End the backend that runs a statement containing `marker`, once it does."""
    import psycopg

    def cut() -> None:
        deadline = time.monotonic() + 20
        with psycopg.connect(url, autocommit=True) as admin:
            while time.monotonic() < deadline:
                row = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                    "query LIKE %s AND pid <> pg_backend_pid() AND state = 'active'",
                    (f"%{marker}%",)).fetchone()
                if row is not None and row[0]:
                    return
                time.sleep(0.01)
    t = threading.Thread(target=cut, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("way", ["transaction", "autocommit write", "read"])
def test_a_statement_whose_backend_is_ended_runs_once_more_and_writes_once(
        store: Store, url: str, way: str) -> None:
    """A backend terminated mid-statement rolled it back (the server ends a session at an
    interrupt point): a transaction that never sent its COMMIT, a read, and an autocommit
    write told 57P01 run once more on another connection, and write once."""
    from jobrun.store.postgres import PostgresStore
    assert isinstance(store, PostgresStore)
    with store.write() as conn:
        conn.execute("CREATE TABLE cut_probe (way text)")
    marker = f"cut_probe_{uuid.uuid4().hex[:8]}"
    slow = f"SELECT pg_sleep(0.3) AS {marker}"  # run again, it is not cut: the cutter is done
    cutter = _terminate_when_running(url, marker)
    if way == "transaction":
        def run(conn: psycopg.Connection[Any]) -> None:
            conn.execute("INSERT INTO cut_probe VALUES ('transaction')")
            conn.execute(slow)
        store.transact(run)
    elif way == "autocommit write":
        store.alone(lambda conn: conn.execute(
            f"INSERT INTO cut_probe SELECT 'autocommit write' FROM ({slow}) AS s"), writes=True)
    else:
        assert store.read(f"SELECT 1 FROM ({slow}) AS s") == [(1,)]
    cutter.join(20)
    assert not cutter.is_alive()  # it did cut the first run
    assert store.read("SELECT way FROM cut_probe") == ([] if way == "read" else [(way,)])


def test_while_the_database_refuses_connections_calls_fail_in_a_line_then_serve_at_once(
        own_database: tuple[str, str]) -> None:
    """Its backends ended while the database accepts no new connection: each call is a
    StoreError at once (not psycopg's own error, not a wait); allowed again, the next call
    is served, with no reconnection backoff to wait out."""
    import psycopg

    from support.postgres import SERVER
    url, name = own_database
    store = open_store(url)
    try:
        store.enqueue([_job()], now=T0)  # type: ignore[list-item]
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s", (name,))
            for _ in range(3):
                with pytest.raises(StoreError, match="not currently accepting connections"):
                    store.enqueue([_job()], now=T0)  # type: ignore[list-item]
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        store.enqueue([_job()], now=T0)  # type: ignore[list-item]
        assert store.counts() == {"queued": 2}
    finally:
        store.close()


def test_a_forked_child_uses_connections_of_its_own_and_leaves_the_parents_alone(
        store: Store) -> None:
    """A task's os.fork() copies the pool: the child must neither speak on the parent's
    sockets (two processes on one session) nor close them (that ends the parent's
    session). It connects anew; the parent's connection goes on with its backend."""
    from jobrun.store.postgres import PostgresStore
    assert isinstance(store, PostgresStore)
    with store.pool.connection() as conn:  # forked while lent: the child gives it back
        backend = conn.info.backend_pid
        pid = os.fork()
    if pid == 0:  # the child: serve, close the store, and say how it went in the exit code
        code = 1
        try:
            store.enqueue([_job()], now=T0)  # type: ignore[list-item]
            with store.pool.connection() as mine:
                code = 0 if mine.info.backend_pid != backend else 2
            store.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with store.pool.connection() as conn:
        assert conn.info.backend_pid == backend  # the same session, alive
    assert store.counts() == {"queued": 1}
