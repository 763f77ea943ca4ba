"""Graceful drain of a real `jobrun start` process on SIGTERM / SIGINT.

In flight at the signal: a job that finishes within `shutdown_timeout` is recorded
`succeeded`; one that does not is handed back `queued` with its attempt not counted, and a
later service runs it. A draining service claims nothing new. The process exits 0 after the drain. A second SIGINT exits at once.
Each test runs on both stores (a SQLite file, a PostgreSQL schema of its own).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jobrun
from crashapp.harness import (
    Reader,
    ServiceProc,
    leader_lock_holders,
    task,
    wait_for,
    wait_serving,
    write_config,
)
from support.postgres import any_store

SHUTDOWN_TIMEOUT = 2.0


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Both stores: a SQLite file in tmp_path, a PostgreSQL schema of its own."""
    with any_store(request.param, str(tmp_path)) as where:
        yield where


def _job(db: Reader, job_id: int) -> dict[str, Any]:
    cols = ("state", "attempts", "result", "holder", "token", "errors")
    row = db.all(f"SELECT {', '.join(cols)} FROM jobs WHERE id = ?", (job_id,))[0]
    d = dict(zip(cols, row))
    d["result"] = json.loads(d["result"]) if d["result"] is not None else None
    d["errors"] = json.loads(d["errors"])
    return d


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_drains_then_exits_zero(tmp_path: Path, signum: int, location: str) -> None:
    store = location
    cfg = write_config(tmp_path, jobrun=f"shutdown_timeout = {SHUTDOWN_TIMEOUT:g}", store=store)
    folder = str(tmp_path)
    app = jobrun.App.from_config(cfg)
    procs: list[ServiceProc] = []
    try:
        # Given: a short job (0.5 s once let go) and a 30 s job, both running.
        short = app.enqueue(task("short"), args=[folder])
        long = app.enqueue(task("long"), args=[folder])
        svc = ServiceProc(cfg, tmp_path / "first.log")
        procs.append(svc)
        wait_serving(store, svc)
        wait_for(lambda: os.path.exists(tmp_path / "short-started")
                 and os.path.exists(tmp_path / "long-ran"), 20, "both jobs to start")
        db = Reader(store)
        assert _job(db, short.id)["state"] == "running"
        assert _job(db, long.id)["state"] == "running"
        assert _job(db, long.id)["attempts"] == 1

        # When: the signal arrives; once the drain began (the service let go of the cron
        # leader lock), a job is enqueued; then the short job is let go (it was in flight).
        assert wait_for(lambda: leader_lock_holders(store, [svc]) != [], 10, "it leads")
        late_dir = tmp_path / "late"
        late_dir.mkdir()
        (late_dir / "go").touch()
        t0 = time.monotonic()
        svc.send(signum)
        wait_for(lambda: leader_lock_holders(store, [svc]) == [], 5, "the drain to begin")
        late = app.enqueue(task("short"), args=[str(late_dir)])
        assert svc.alive(), "the drain ended before the late job was enqueued"
        (tmp_path / "go").touch()
        rc = svc.wait(SHUTDOWN_TIMEOUT + 5)
        elapsed = time.monotonic() - t0
        log = svc.log_text()

        # Then: exit 0 after about shutdown_timeout; the short job recorded as succeeded,
        # the long one handed back as queued without counting its attempt.
        assert rc == 0, log[-3000:]
        assert elapsed < SHUTDOWN_TIMEOUT + 4, (elapsed, log[-3000:])
        assert elapsed >= SHUTDOWN_TIMEOUT - 0.5, f"did not wait for the long job: {elapsed}s"
        s = _job(db, short.id)
        assert (s["state"], s["result"], s["attempts"]) == ("succeeded", "short done", 1), s
        lj = _job(db, long.id)
        assert lj["state"] == "queued", lj
        assert lj["attempts"] == 0, lj
        assert lj["holder"] is None and lj["token"] is None, lj
        assert lj["errors"] == [], lj
        # The draining service claimed nothing: the job enqueued during the drain (its
        # doorbell rung) never started there and waits, queued, for another service.
        lt = _job(db, late.id)
        assert (lt["state"], lt["attempts"]) == ("queued", 0), lt
        assert not (late_dir / "short-started").exists(), "the draining service ran a job"

        # And: a new service runs the long job again (the marker makes the rerun fast), and
        # the job enqueued during the drain.
        again = ServiceProc(cfg, tmp_path / "second.log")
        procs.append(again)
        wait_for(lambda: _job(db, long.id)["state"] == "succeeded", 20, "the long job's rerun")
        lj = _job(db, long.id)
        assert (lj["result"], lj["attempts"]) == ("second run", 1), lj
        wait_for(lambda: _job(db, late.id)["state"] == "succeeded", 20, "the late job")
        again.send(signal.SIGTERM)
        assert again.wait(SHUTDOWN_TIMEOUT + 5) == 0, again.log_text()[-3000:]
        db.close()
    finally:
        for p in procs:
            p.kill()
        app.close()


@pytest.mark.slow
def test_second_sigint_exits_at_once(tmp_path: Path, location: str) -> None:
    store = location
    cfg = write_config(tmp_path, jobrun="shutdown_timeout = 60", store=store)
    app = jobrun.App.from_config(cfg)
    procs: list[ServiceProc] = []
    try:
        # Given: a 30 s job running, and a drain that would wait up to 60 s for it.
        long = app.enqueue(task("long"), args=[str(tmp_path)])
        svc = ServiceProc(cfg, tmp_path / "first.log")
        procs.append(svc)
        wait_serving(store, svc)
        wait_for(lambda: os.path.exists(tmp_path / "long-ran"), 20, "the long job to start")

        # When: Ctrl-C once: the service drains (waits for the job) ...
        svc.send(signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):
            svc.proc.wait(0.5)  # still draining: it must not exit yet
        # ... and Ctrl-C again: it exits now.
        t0 = time.monotonic()
        svc.send(signal.SIGINT)
        rc = svc.wait(5)
        assert time.monotonic() - t0 < 2.0
        assert rc != 0

        # Then: the job it dropped is taken back from the dead holder and runs again.
        db = Reader(store)
        again = ServiceProc(cfg, tmp_path / "second.log")
        procs.append(again)
        wait_for(lambda: _job(db, long.id)["state"] == "succeeded", 20, "the rerun")
        lj = _job(db, long.id)
        assert lj["result"] == "second run"
        assert [e["type"] for e in lj["errors"]] == ["WorkerLost"], lj
        assert lj["attempts"] == 2, lj
        again.send(signal.SIGINT)
        assert again.wait(10) == 0, again.log_text()[-3000:]
        db.close()
    finally:
        for p in procs:
            p.kill()
        app.close()


@pytest.mark.slow
@pytest.mark.parametrize("metrics", [False, True], ids=["plain", "metrics"])
def test_cooperative_jobs_are_handed_back_every_time(tmp_path: Path, metrics: bool,
                                                     location: str) -> None:
    """A job that sees the stop flag and returns, or raises, did not finish its work: the
    drain hands it back (queued, attempt uncounted), whatever it did with the flag, and with
    or without [metrics] (the outcome used to depend on a race)."""
    import socket

    extra = ""
    if metrics:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        extra = f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n'
    store = location
    cfg = write_config(tmp_path, jobrun="shutdown_timeout = 1", store=store)
    with open(cfg, "a", encoding="utf-8") as f:
        f.write(extra)
    folder = str(tmp_path)
    app = jobrun.App.from_config(cfg)
    procs: list[ServiceProc] = []
    try:
        # Given: three cooperative jobs running: one returns on the flag, one raises (with
        # max_attempts = 1), one tells the drain from a cancel and raises Interrupted.
        names = ("coop_return", "coop_raise", "coop_interrupted")
        jobs = {n: app.enqueue(task(n), args=[folder]) for n in names}
        svc = ServiceProc(cfg, tmp_path / "first.log")
        procs.append(svc)
        wait_serving(store, svc)
        wait_for(lambda: all(os.path.exists(tmp_path / f"{n}-started") for n in names), 20,
                 "the three jobs to start")

        # When: SIGTERM; the drain's 1 s pass, the jobs see the flag and stop.
        svc.send(signal.SIGTERM)
        assert svc.wait(15) == 0, svc.log_text()[-3000:]

        # Then: all three are queued again, no attempt counted, no error recorded.
        db = Reader(store)
        for n, j in jobs.items():
            d = _job(db, j.id)
            assert (d["state"], d["attempts"], d["errors"]) == ("queued", 0, []), (n, d)
        log = svc.log_text()
        assert "succeeded" not in log and " dead" not in log, log[-3000:]

        # And: a new service runs each of them again, to success.
        again = ServiceProc(cfg, tmp_path / "second.log")
        procs.append(again)
        wait_for(lambda: all(_job(db, j.id)["state"] == "succeeded" for j in jobs.values()),
                 20, "the reruns")
        assert {_job(db, j.id)["result"] for j in jobs.values()} == {"second run"}
        again.send(signal.SIGTERM)
        assert again.wait(15) == 0, again.log_text()[-3000:]
        db.close()
    finally:
        for p in procs:
            p.kill()
        app.close()
