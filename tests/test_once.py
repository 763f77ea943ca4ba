"""jobrun.once: a side effect of an at-least-once job happens once in effect, on both
stores (a SQLite file, a PostgreSQL schema of its own)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jobrun
import jobrun.testing
from jobrun.once import forget
from support.postgres import fresh_store_url
from support.wait import wait_for


@pytest.fixture(params=["sqlite", "postgres"])
def store_path(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "jobs.db")
    else:
        with fresh_store_url() as url:
            yield url


def _q(app: jobrun.App, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """A read of the store (`?` placeholders, made `%s` on PostgreSQL)."""
    if app.store_path.startswith("postgresql://"):
        sql = sql.replace("?", "%s")
    return app.store.read(sql, params or None)


def _ph(app: jobrun.App) -> str:
    """The placeholder `op.connection` takes: `?` (apsw) or `%s` (psycopg)."""
    return "%s" if app.store_path.startswith("postgresql://") else "?"


def _ddl(app: jobrun.App, sql: str) -> None:
    with app.store.write() as conn:  # type: ignore[attr-defined]
        conn.execute(sql)


def test_once_survives_a_retry_after_the_side_effect(app: jobrun.App) -> None:
    sent: list[int] = []
    _ddl(app, "CREATE TABLE sent_emails (user_id INTEGER)")
    ph = _ph(app)

    @app.task(max_attempts=3, retry_base=0.001)
    def welcome(user_id: int) -> str:
        with jobrun.once(f"welcome:{user_id}") as op:
            if op.done:
                return "already sent"
            sent.append(user_id)  # the side effect
            op.connection.execute(f"INSERT INTO sent_emails VALUES ({ph})", (user_id,))
        if jobrun.context().attempt == 1:
            raise ConnectionError("the worker fails after the side effect")
        return "sent"

    job = welcome.enqueue(42)
    jobrun.testing.run_until_idle(app)
    assert job.result() == "already sent" and job.attempts == 2
    assert sent == [42]
    assert _q(app, "SELECT count(*) FROM sent_emails") == [(1,)]
    assert _q(app, "SELECT key, job_id FROM processed_operations") == [("welcome:42", job.id)]


def test_an_error_in_the_block_records_nothing(app: jobrun.App) -> None:
    _ddl(app, "CREATE TABLE ledger (x INTEGER)")
    ph = _ph(app)
    tries: list[int] = []

    @app.task(max_attempts=3, retry_base=0.001)
    def charge(order: int) -> None:
        with jobrun.once(f"charge:{order}") as op:
            if op.done:
                return
            tries.append(order)
            op.connection.execute(f"INSERT INTO ledger VALUES ({ph})", (order,))
            if len(tries) == 1:
                raise TimeoutError("payment gateway timed out")

    job = charge.enqueue(7)
    jobrun.testing.run_until_idle(app)
    assert job.refresh().state == "succeeded" and tries == [7, 7]
    assert _q(app, "SELECT count(*) FROM ledger") == [(1,)]  # the failed try rolled back


def test_two_jobs_one_operation(app: jobrun.App) -> None:
    effects: list[str] = []

    @app.task
    def notify(key: str) -> bool:
        with jobrun.once(key) as op:
            if op.done:
                return False
            effects.append(key)
        return True

    jobs = [notify.enqueue("invoice-9") for _ in range(3)]
    jobrun.testing.run_until_idle(app)
    assert sorted(j.result() for j in jobs) == [False, False, True]
    assert effects == ["invoice-9"]
    assert jobrun.once("invoice-9", store=app.store_path).__enter__().done
    assert forget("invoice-9", store=app.store_path)
    with jobrun.once("invoice-9", store=app.store_path) as op:
        assert not op.done


def test_once_needs_a_key() -> None:
    with pytest.raises(TypeError):
        jobrun.once("")


def test_op_connection_is_the_stores_own_kind(app: jobrun.App) -> None:
    # A psycopg connection inside the block's open transaction on PostgreSQL, an apsw one
    # on SQLite (never a file named after a URL); its writes commit with the key, or not.
    _ddl(app, "CREATE TABLE receipts (n INTEGER)")
    ph = _ph(app)
    with jobrun.once("receipt:1", store=app.store_path) as op:
        conn = op.connection
        conn.execute(f"INSERT INTO receipts VALUES ({ph})", (1,))
        if ph == "%s":
            import psycopg

            assert isinstance(conn, psycopg.Connection)
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        else:
            assert type(conn).__module__ == "apsw" and conn.in_transaction
    assert _q(app, "SELECT state FROM processed_operations") == [("done",)]
    with pytest.raises(ZeroDivisionError), jobrun.once("receipt:2", store=app.store_path) as op:
        op.connection.execute(f"INSERT INTO receipts VALUES ({ph})", (2,))
        raise ZeroDivisionError
    assert _q(app, "SELECT n FROM receipts") == [(1,)]  # rolled back with the block
    assert _q(app, "SELECT key FROM processed_operations") == [("receipt:1",)]
    assert forget("receipt:1", store=app.store_path)
    assert not forget("receipt:1", store=app.store_path)


def test_a_steps_last_block_commits_with_its_record(app: jobrun.App) -> None:
    _ddl(app, "CREATE TABLE paid (n INTEGER)")
    ph = _ph(app)

    @app.step
    def pay(n: int) -> str:
        with jobrun.once(f"pay:{n}") as op:
            if not op.done:
                op.connection.execute(f"INSERT INTO paid VALUES ({ph})", (n,))
        return "paid"

    @app.workflow
    def flow(n: int) -> str:
        return pay(n)

    with jobrun.testing.inline(app):
        job = flow.enqueue(5)
    assert job.result() == "paid"
    assert _q(app, "SELECT n FROM paid") == [(5,)]
    assert _q(app, "SELECT state, job_id FROM processed_operations") == [("done", job.id)]
    assert [(s.name, s.state) for s in app.store.steps(job.id)] == [("pay", "succeeded")]


_ATTEMPT = """
import sys, pathlib, jobrun
url, key, effects, inside, release = sys.argv[1:]
print("entering", flush=True)
with jobrun.once(key, store=url, wait=60) as op:
    if op.done:
        print("done", flush=True)
        sys.exit(0)
    with open(effects, "a") as f:
        f.write("sent\\n")  # the side effect
    op.connection.execute("INSERT INTO sent VALUES (%s)", (key,))
    pathlib.Path(inside).touch()
    while not pathlib.Path(release).exists():
        pass
print("did", flush=True)
"""


def test_two_processes_one_side_effect_on_postgres(tmp_path: Path) -> None:
    # Given: two processes attempting the same operation on one PostgreSQL store, the
    # second starting while the first is inside its block.
    with fresh_store_url() as url:
        app = jobrun.App(url)
        _ddl(app, "CREATE TABLE sent (key TEXT)")
        effects, release = tmp_path / "effects", tmp_path / "release"
        procs = []
        for name in ("a", "b"):
            procs.append(subprocess.Popen(
                [sys.executable, "-c", _ATTEMPT, url, "mail:9", str(effects),
                 str(tmp_path / f"inside-{name}"), str(release)],
                stdout=subprocess.PIPE, text=True))
            if name == "a":
                wait_for(lambda: (tmp_path / "inside-a").exists(), 30, "a inside its block")
        # When: the first finishes its block.
        release.touch()
        outs = sorted(p.communicate(timeout=60)[0].split()[-1] for p in procs)
        # Then: the side effect happened once; the other attempt saw it done.
        assert outs == ["did", "done"]
        assert effects.read_text() == "sent\n"
        assert _q(app, "SELECT key FROM sent") == [("mail:9",)]
        assert _q(app, "SELECT state FROM processed_operations") == [("done",)]
        app.close()


def test_a_takeover_waits_for_a_record_being_committed_on_postgres() -> None:
    # Given: a stale pending row (its attempt is gone) that the attempt is recording as done
    # right now, in a transaction not yet committed.
    import threading

    import psycopg

    with fresh_store_url() as url:
        app = jobrun.App(url)
        _ddl(app, "SELECT 1")
        _q(app, "INSERT INTO processed_operations (key, done_at, state, owner) "
           "VALUES ('k', ?, 'pending', 'pid:1:1') RETURNING key", jobrun.clock.now() - 1e6)
        seen: list[bool] = []
        with psycopg.connect(url) as late:
            late.execute("UPDATE processed_operations SET state = 'done' WHERE key = 'k'")
            # When: another attempt enters the block meanwhile, then the record commits.
            t = threading.Thread(target=lambda: seen.append(
                jobrun.once("k", store=url).__enter__().done), daemon=True)
            t.start()
            wait_for(lambda: _q(app, "SELECT count(*) FROM pg_stat_activity WHERE "
                                     "wait_event_type = 'Lock' AND query LIKE ? AND "
                                     "pid <> pg_backend_pid()",
                                "%processed_operations%") == [(1,)],
                     30, "the second attempt waiting on the row")
        t.join(30)
        # Then: it waited, and found the operation done (it did not take it over).
        assert seen == [True]
        assert _q(app, "SELECT state, owner FROM processed_operations") == [("done", "pid:1:1")]
        app.close()
