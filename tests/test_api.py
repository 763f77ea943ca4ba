"""The Python API of CONTRACT.md, against a real store: a SQLite file and a PostgreSQL schema."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import apsw
import pytest

import jobrun
import jobrun.testing
from jobrun import JobState
from support.postgres import any_store


@pytest.fixture(params=["sqlite", "postgres"])
def store_path(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test on both stores: a SQLite file, and a PostgreSQL schema of its own."""
    with any_store(request.param, str(tmp_path)) as where:
        yield where


def rows(app: jobrun.App) -> int:
    return app.store.read("SELECT count(*) FROM jobs")[0][0]


def test_enqueue_run_and_result(app: jobrun.App) -> None:
    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    assert add.name == f"{__name__}:test_enqueue_run_and_result.<locals>.add"
    assert add(2, 3) == 5  # calling the task runs it here
    job = add.enqueue(2, 3)
    assert isinstance(job, jobrun.Job) and job.state == JobState.QUEUED and job.attempts == 0
    counts = jobrun.testing.run_until_idle(app)
    assert counts == {"succeeded": 1}
    assert job.result(timeout=1) == 5
    assert job.refresh().state == "succeeded" and job.attempts == 1
    assert app.job(job.id).record.result == 5


def test_options_priority_and_order(app: jobrun.App) -> None:
    seen: list[str] = []

    @app.task(queue="one")
    def note(tag: str) -> None:
        seen.append(tag)

    app.settings = jobrun.config.Settings(
        queues={"one": jobrun.config.QueueConfig("one", concurrency=1)})
    note.enqueue("low-1")
    note.enqueue("low-2")
    note.options(priority=5).enqueue("high")
    jobrun.testing.run_until_idle(app)
    assert seen == ["high", "low-1", "low-2"]


def test_delay_and_run_at(app: jobrun.App) -> None:
    @app.task
    def f() -> None: ...

    j = f.options(delay=30).enqueue()
    assert j.state == JobState.SCHEDULED
    rec = app.job(j.id).record
    assert rec.run_at - rec.enqueued_at == pytest.approx(30, abs=0.01)
    at = datetime.now(UTC) + timedelta(hours=1)
    j2 = app.enqueue(f.name, run_at=at)
    assert app.job(j2.id).record.run_at == pytest.approx(at.timestamp())
    with pytest.raises(ValueError, match="aware"):
        app.enqueue(f.name, run_at=datetime.now())


def test_delayed_job_runs_at_its_time(app: jobrun.App) -> None:
    @app.task
    def stamp() -> float:
        return jobrun.clock.now()

    job = stamp.options(delay=0.3).enqueue()
    due = app.job(job.id).record.run_at
    jobrun.testing.run_until_idle(app, timeout=10)
    started = job.result()
    # The loop sleeps until the next run_at, not a poll (1 s): late by less than one poll,
    # with room for a loaded machine.
    assert due <= started < due + 0.9


def test_key_deduplicates_unfinished_jobs(app: jobrun.App) -> None:
    @app.task
    def welcome(user: int) -> None: ...

    a = welcome.options(key="welcome-42").enqueue(42)
    b = welcome.options(key="welcome-42").enqueue(42)
    assert a.id == b.id and rows(app) == 1
    jobrun.testing.run_until_idle(app)
    c = welcome.options(key="welcome-42").enqueue(42)  # finished: a new job may start
    assert c.id != a.id and rows(app) == 2


def test_enqueue_many_is_one_transaction(app: jobrun.App) -> None:
    @app.task
    def f(x: object) -> None: ...

    jobs = app.enqueue_many([f.call(i) for i in range(100)])
    assert [j.id for j in jobs] == list(range(1, 101))
    with pytest.raises(TypeError, match="set"):
        app.enqueue_many([f.call(1), f.call({1, 2}), f.call(3)])
    assert rows(app) == 100


@pytest.mark.parametrize("bad, named", [
    ({1, 2}, "set"), (b"raw", "bytes"), (object(), "object"), (math.nan, "nan"),
    (math.inf, "inf"), (datetime(2026, 1, 1), "datetime"),
])
def test_bad_payloads_are_refused_and_write_nothing(app: jobrun.App, bad: object,
                                                    named: str) -> None:
    @app.task
    def f(x: object) -> None: ...

    with pytest.raises(TypeError, match=named):
        f.enqueue(bad)
    with pytest.raises(TypeError, match=named):
        f.enqueue(x={"deep": [bad]})
    assert rows(app) == 0


def test_cycles_and_deep_payloads_are_refused(app: jobrun.App) -> None:
    @app.task
    def f(x: object) -> None: ...

    cyc: list[object] = []
    cyc.append(cyc)
    with pytest.raises(TypeError, match="cycle"):
        f.enqueue(cyc)
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(TypeError, match="deep"):
        f.enqueue(deep)
    assert rows(app) == 0


def test_unserialisable_return_value_is_dead(app: jobrun.App) -> None:
    @app.task
    def bad() -> object:
        return {1, 2}

    job = bad.enqueue()
    jobrun.testing.run_until_idle(app)
    with pytest.raises(jobrun.JobFailed, match="not JSON-serialisable"):
        job.result()
    assert job.attempts == 1


def test_retry_permanent_and_dead(app: jobrun.App) -> None:
    @app.task(max_attempts=3, retry_base=0.001)
    def always() -> None:
        raise ValueError("nope")

    @app.task(max_attempts=5)
    def perm() -> None:
        raise jobrun.Permanent("bad input")

    @app.task(max_attempts=4)
    def asks() -> int:
        ctx = jobrun.context()
        if ctx.attempt < 3:
            raise jobrun.Retry(delay=0.01)
        return ctx.attempt

    a, p, r = always.enqueue(), perm.enqueue(), asks.enqueue()
    jobrun.testing.run_until_idle(app)
    with pytest.raises(jobrun.JobFailed) as e:
        a.result()
    assert a.attempts == 3 and [x["type"] for x in e.value.errors] == ["ValueError"] * 3
    assert "Traceback" in e.value.errors[0]["traceback"]
    with pytest.raises(jobrun.JobFailed, match="bad input"):
        p.result()
    assert p.attempts == 1
    assert r.result() == 3 and r.attempts == 3


def test_retry_honours_delay(app: jobrun.App) -> None:
    @app.task(max_attempts=2)
    def later() -> None:
        if jobrun.context().attempt == 1:
            raise jobrun.Retry(delay=3600)

    job = later.enqueue()
    jobrun.testing.run_until_idle(app, timeout=2)
    rec = job.refresh().record
    assert rec.state == "retrying"
    assert rec.run_at - rec.errors[0]["at"] == pytest.approx(3600, abs=1)


def test_unknown_task_goes_dead_without_importing(app: jobrun.App) -> None:
    import sys

    sys.modules.pop("http.server", None)
    job = app.enqueue("os:system", args=["echo pwned"])
    job2 = app.enqueue("http.server:test")
    jobrun.testing.run_until_idle(app)
    for j in (job, job2):
        with pytest.raises(jobrun.JobFailed, match="UnknownTask"):
            j.result()
    assert "http.server" not in sys.modules


def test_cancel_waiting_jobs(app: jobrun.App) -> None:
    @app.task
    def f() -> None: ...

    j = f.options(delay=60).enqueue()
    assert j.cancel() is True
    assert j.refresh().state == "cancelled"
    with pytest.raises(jobrun.JobFailed, match="cancelled"):
        j.result(timeout=0)
    assert j.cancel() is False


def test_result_timeout(app: jobrun.App) -> None:
    job = app.enqueue("nobody:runs")
    with pytest.raises(TimeoutError):
        job.result(timeout=0.05)


def test_context_outside_a_job() -> None:
    with pytest.raises(jobrun.JobrunError):
        jobrun.context()


def test_context_inside_a_job(app: jobrun.App) -> None:
    @app.task
    def who() -> dict[str, object]:
        c = jobrun.context()
        return {"id": c.job_id, "attempt": c.attempt, "task": c.task, "trace": c.trace_id,
                "beat": c.heartbeat(), "cancelled": c.cancelled}

    job = app.enqueue(who.name, trace_id="req-123")
    jobrun.testing.run_until_idle(app)
    assert job.result() == {"id": job.id, "attempt": 1, "task": who.name, "trace": "req-123",
                            "beat": True, "cancelled": False}


@pytest.mark.parametrize("store_path", ["sqlite"], indirect=True)  # PostgreSQL: test_postgres
def test_transactional_enqueue_commits_and_rolls_back(app: jobrun.App, store_path: str) -> None:
    @app.task
    def notify(order: int) -> None: ...

    _ = app.store  # creates the schema
    conn = apsw.Connection(store_path)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO orders VALUES (1)")
    job = notify.options(connection=conn).enqueue(1)
    conn.execute("COMMIT")
    assert app.job(job.id).state == "queued"

    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO orders VALUES (2)")
    notify.options(connection=conn).enqueue(2)
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT count(*) FROM orders").get == 1
    assert rows(app) == 1

    with pytest.raises(jobrun.StoreError, match="open transaction"):
        notify.options(connection=conn).enqueue(3)


def test_inline_mode_runs_at_once_with_retries(app: jobrun.App) -> None:
    @app.task(max_attempts=3)
    def flaky() -> int:
        if jobrun.context().attempt < 2:
            raise ConnectionError("down")
        return 7

    with jobrun.testing.inline(app):
        job = flaky.enqueue()
        assert job.state == "succeeded" and job.attempts == 2 and job.result(timeout=0) == 7
    assert flaky.enqueue().state == "queued"


def test_unknown_option_and_bad_arguments(app: jobrun.App) -> None:
    @app.task
    def f() -> None: ...

    with pytest.raises(TypeError, match="unknown enqueue option"):
        f.options(dely=3)
    with pytest.raises(TypeError, match="delay"):
        f.options(delay=-1).enqueue()
    with pytest.raises(TypeError, match="args"):
        app.enqueue(f.name, args="x")
    assert rows(app) == 0


def test_app_from_config_and_env(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "jobrun.toml"
    cfg.write_text('[jobrun]\nstore = "data/j.db"\n[queues.default]\nconcurrency = 3\n')
    app = jobrun.App.from_config(str(cfg))
    assert app.store_path == str(tmp_path / "data" / "j.db")
    assert app.settings.queue("default").concurrency == 3
    monkeypatch.setenv("JOBRUN_CONFIG", str(cfg))
    assert jobrun.App().store_path == str(tmp_path / "data" / "j.db")
    monkeypatch.setenv("JOBRUN_STORE", str(tmp_path / "other.db"))
    assert jobrun.App().store_path == str(tmp_path / "other.db")


def test_default_store_in_user_data_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = jobrun.App()
    assert app.store_path.startswith(str(tmp_path / "xdg-data"))
    app.enqueue("x:y")
    app.close()


def test_embedded_start_stop(app: jobrun.App) -> None:
    @app.task
    def f(x: int) -> int:
        return x * 2

    app.start()
    try:
        assert [f.enqueue(i).result(timeout=5) for i in range(20)] == [i * 2 for i in range(20)]
    finally:
        app.stop()


def test_public_names() -> None:
    assert set(jobrun.__all__) == {
        "App", "Call", "ConfigError", "Context", "Interrupted", "InvalidJob", "Job", "JobFailed", "JobState",
        "JobrunError", "NonDeterministic", "Permanent", "Retry", "StepFailed", "StoreError",
        "Task", "UnknownTask", "context", "gather", "once", "sleep", "wait_event"}
    for e in (jobrun.ConfigError, jobrun.StoreError, jobrun.JobFailed, jobrun.UnknownTask,
              jobrun.StepFailed, jobrun.NonDeterministic, jobrun.InvalidJob):
        assert issubclass(e, jobrun.JobrunError)
    assert [s.value for s in JobState] == ["scheduled", "queued", "running", "retrying",
                                           "succeeded", "dead", "cancelled"]


def test_a_refused_payload_is_an_invalid_job_and_a_type_error(app: jobrun.App) -> None:
    @app.task
    def takes(x: object) -> None: ...

    with pytest.raises(jobrun.InvalidJob) as refused:
        takes.enqueue(object())
    assert isinstance(refused.value, TypeError) and isinstance(refused.value, jobrun.JobrunError)
    with pytest.raises(jobrun.InvalidJob):
        takes.enqueue(1, 2)
    with pytest.raises(jobrun.InvalidJob):
        takes.options(priority=True).enqueue(1)


def test_a_payload_over_the_limit_is_refused(app: jobrun.App) -> None:
    @app.task
    def big(blob: str) -> str:
        return blob

    from jobrun.serialize import MAX_PAYLOAD

    with pytest.raises(jobrun.InvalidJob, match="MiB limit"):
        big.enqueue("x" * (MAX_PAYLOAD + 1))
    assert rows(app) == 0
    job = big.enqueue("x" * 1000)  # ids and small data are fine
    jobrun.testing.run_until_idle(app)
    assert job.result() == "x" * 1000
