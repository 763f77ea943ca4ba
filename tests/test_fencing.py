"""Fencing: an attempt whose job was taken back cannot record its result over the newer one.

First with the store API on a real file (acquire with a token, take the job back, acquire
again, then the old token's outcomes change nothing); then end to end: a service stuck
(SIGSTOP) while running a job loses it when its lease expires, another service runs it to
success, and the first one's late result, once it continues, is discarded.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import jobrun
from crashapp.harness import (
    Reader,
    ServiceProc,
    sigstop_outside_write,
    task,
    wait_for,
    wait_serving,
    write_config,
)
from jobrun.store import NewJob, Outcome, SqliteStore

NOW = 1_700_000_000.0
LEASE = 60.0


def _new_job() -> NewJob:
    return NewJob(task="t:f", queue="default", args="[]", kwargs="{}", priority=0,
                  max_attempts=5, run_at=NOW, scheduled=False)


def _snapshot(store: SqliteStore, job_id: int) -> tuple[Any, ...]:
    return store.read("SELECT * FROM jobs WHERE id = ?", (job_id,))[0]


def _by_holder(store: SqliteStore, holder: str, now: float) -> list[Any]:
    return store.rescue_holder(holder, f"worker lost: service process {holder} died", now=now)


def _by_lease(store: SqliteStore, holder: str, now: float) -> list[Any]:
    (job_id,) = [j for j, h in store.expired_leases(now=now) if h == holder]
    return store.rescue_expired(job_id, f"worker lost: lease of {holder} expired", now=now)


STALE_OUTCOMES: list[Callable[[int, int], Outcome]] = [
    lambda i, t: Outcome(i, t, "succeeded", result=json.dumps("old")),
    lambda i, t: Outcome(i, t, "retrying", run_at=NOW + 5,
                         error={"at": NOW, "type": "E", "message": "old", "attempt": 1}),
    lambda i, t: Outcome(i, t, "dead", error={"at": NOW, "type": "E", "message": "old",
                                              "attempt": 1}),
    lambda i, t: Outcome(i, t, "cancelled", error={"at": NOW, "type": "E", "message": "old",
                                                   "attempt": 1}),
    lambda i, t: Outcome(i, t, "released"),
]


@pytest.mark.parametrize("second_holder", ["h2", "h1"], ids=["other-holder", "same-holder"])
@pytest.mark.parametrize("take_back", [_by_holder, _by_lease], ids=["rescue", "lease-expired"])
def test_stale_token_records_nothing(tmp_path: Path, take_back: Any, second_holder: str) -> None:
    store = SqliteStore(str(tmp_path / "jobs.db"))
    try:
        # Given: a job acquired by h1 (token t1), taken back, and acquired again (token t2).
        (job_id,) = store.enqueue([_new_job()], now=NOW)
        (first,) = store.acquire_round([], {"default": 1}, "h1", now=NOW, lease=LEASE).claims
        assert (first.id, first.attempt) == (job_id, 1)
        later = NOW + LEASE + 1  # past the lease, for the lease-expired take-back
        rows = take_back(store, "h1", later)
        assert [(r[0], r[4]) for r in rows] == [(job_id, "queued")]
        (second,) = store.acquire_round([], {"default": 1}, second_holder, now=later,
                               lease=LEASE).claims
        assert (second.id, second.attempt) == (job_id, 2)
        assert second.token != first.token
        before = _snapshot(store, job_id)

        # When: the first attempt reports, late, each kind of outcome with its old token.
        for make in STALE_OUTCOMES:
            assert store.record([make(job_id, first.token)], now=later + 1) == 0
            tick = store.acquire_round([make(job_id, first.token)], {}, "h1", now=later + 1, lease=LEASE)
            assert tick.recorded == 0
        assert store.extend_lease(job_id, first.token, now=later + 1, lease=LEASE) is False

        # Then: nothing changed: the newer attempt still holds the job.
        assert _snapshot(store, job_id) == before
        rec = store.get(job_id)
        assert rec is not None
        assert (rec.state, rec.holder, rec.token, rec.attempts) == \
            ("running", second_holder, second.token, 2)

        # And: the newer attempt's own outcome records; the old one still cannot overwrite it.
        assert store.record([Outcome(job_id, second.token, "succeeded",
                                     result=json.dumps("new"))], now=later + 2) == 1
        for make in STALE_OUTCOMES:
            assert store.record([make(job_id, first.token)], now=later + 3) == 0
        rec = store.get(job_id)
        assert rec is not None
        assert (rec.state, rec.result, rec.attempts, rec.holder) == ("succeeded", "new", 2, None)
        assert [e["type"] for e in rec.errors] == \
            ["WorkerLost" if take_back is _by_holder else "LeaseExpired"]
    finally:
        store.close()


@pytest.mark.slow
def test_stuck_service_late_result_is_discarded(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, jobrun='lease = "1s"')
    store = str(tmp_path / "jobs.db")
    app = jobrun.App.from_config(cfg)
    procs: list[ServiceProc] = []
    try:
        # Given: service A runs a job that blocks on a gate file; A is then stuck (SIGSTOP),
        # alive (its liveness lock held) but no longer renewing its 1 s lease.
        job = app.enqueue(task("gated"), args=[str(tmp_path)])
        a = ServiceProc(cfg, tmp_path / "a.log")
        procs.append(a)
        wait_for(lambda: (tmp_path / f"started-{a.pid}").exists(), 20, "A to start the job")
        db = Reader(store)
        (holder_a, token_a) = db.all("SELECT holder, token FROM jobs WHERE id = ?", (job.id,))[0]
        assert holder_a.startswith(a.holder_prefix())
        sigstop_outside_write(store, a)

        # When: service B takes the job back (expired lease) and runs it to success.
        b = ServiceProc(cfg, tmp_path / "b.log")
        procs.append(b)
        wait_serving(store, b)
        wait_for(lambda: (tmp_path / f"started-{b.pid}").exists(), 20, "B to rerun the job")
        (tmp_path / "gate").touch()
        wait_for(lambda: job.refresh().state == "succeeded", 20, "B's run to succeed")
        done = db.all("SELECT result, finished_at, attempts, errors FROM jobs WHERE id = ?",
                      (job.id,))[0]
        assert json.loads(done[0]) == b.pid
        assert done[2] == 2
        assert [e["type"] for e in json.loads(done[3])] == ["LeaseExpired"]

        # And: A continues, its attempt finishes and reports; then A drains and exits.
        os.kill(a.pid, signal.SIGCONT)
        wait_for(lambda: (tmp_path / f"finished-{a.pid}").exists(), 20,
                 "A's stale attempt to finish")
        a.send(signal.SIGTERM)
        assert a.wait(15) == 0, a.log_text()[-3000:]

        # Then: the stored result is still B's; A's late result was discarded.
        after = db.all("SELECT state, result, finished_at, attempts, errors, holder, token "
                       "FROM jobs WHERE id = ?", (job.id,))[0]
        assert after[0] == "succeeded"
        assert json.loads(after[1]) == b.pid, f"A's late result overwrote B's: {after}"
        assert after[1:5] == done, after
        assert after[5] is None and after[6] != token_a
        assert job.result(timeout=1) == b.pid
        b.send(signal.SIGTERM)
        assert b.wait(15) == 0, b.log_text()[-3000:]
        db.close()
    finally:
        for p in procs:
            p.kill()
        app.close()
