"""Held claims, end to end: jobs a service claims ahead of its free workers count no
attempt until they start, so a service killed with jobs held runs nothing twice on their
account and spends none of their attempts; a process child gives back the jobs queued
behind a long one when another child is free; only a queue served alone holds jobs."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import apsw
import pytest

import jobrun
import jobrun.testing
from crashapp.harness import ServiceProc, sigstop_outside_write, wait_for, wait_serving
from execapp import tasks as t
from jobrun import began
from jobrun.worker.maintenance import alone
from support.apps import open_app
from support.config import write_config


def config(folder: Path, body: str) -> str:
    return write_config(folder, imports=["execapp.tasks"], shutdown_timeout=5, body=body)


def rows(store: str, sql: str) -> list[Any]:
    conn = apsw.Connection(store)
    conn.set_busy_timeout(5000)
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


def test_a_killed_services_held_jobs_run_again_without_spending_an_attempt(
        tmp_path: Path) -> None:
    cfg = config(tmp_path, "[queues.held]\nconcurrency = 1\nprefetch = 4\n")
    store = str(tmp_path / "jobs.db")
    app = open_app(cfg)
    jobs = app.enqueue_many([t.held_nap.call(0.4) for _ in range(6)])
    svc = ServiceProc(cfg, tmp_path / "one.log")
    try:
        wait_serving(store, svc)
        held_sql = "SELECT count(*) FROM jobs WHERE state = 'running' AND started_at IS NULL"
        wait_for(lambda: rows(store, held_sql)[0][0] >= 3, 15, "jobs held ahead")
        sigstop_outside_write(store, svc)  # what the store says now is what the kill finds
        at_kill = {i: (s, a, st, tok) for i, s, a, st, tok in rows(
            store, "SELECT id, state, attempts, started_at, token FROM jobs")}
        (holder,) = {h for (h,) in rows(store, "SELECT holder FROM jobs WHERE holder IS NOT NULL")}
        log = began.read(began.path_of(store, holder))  # what it began: the rescue reads it
        os.kill(svc.pid, signal.SIGKILL)
        svc.wait(10)
    finally:
        svc.send(signal.SIGKILL)
    assert log is not None
    running = {i for i, v in at_kill.items() if v[0] == "running"}
    held = {i for i in running if at_kill[i][2] is None and at_kill[i][3] not in log}
    started = running - held  # its start recorded, or in the log (it began, unrecorded)
    assert len(held) >= 2 and 1 <= len(started) <= 2, at_kill  # one worker: one begun
    assert all(at_kill[i][1] == 0 for i in running if at_kill[i][2] is None)  # held: uncounted
    again = ServiceProc(cfg, tmp_path / "two.log")
    try:
        wait_for(lambda: all(j.refresh().state.value == "succeeded" for j in jobs), 30,
                 "every job to run to the end under the second service")
    finally:
        again.send(signal.SIGTERM)
        again.wait(20)
    for j in jobs:
        r = j.refresh().record
        lost = [e for e in r.errors if e["type"] == "WorkerLost"]
        if j.id in held:  # back as it was: one attempt in all, no error
            assert (r.attempts, lost) == (1, []), r
        elif j.id in started:  # the attempt the kill cut counts, recorded or not
            assert r.attempts == 2 and len(lost) == 1, r


def test_no_job_waits_behind_a_long_one_while_a_child_is_free(tmp_path: Path) -> None:
    cfg = config(tmp_path, "[queues.crash]\nexecutor = \"process\"\nconcurrency = 2\n")
    store = str(tmp_path / "jobs.db")
    folder = str(tmp_path)
    app = open_app(cfg)
    long = app.enqueue(t.gated_pid.name, args=[folder, "long"])
    quick = app.enqueue_many([t.crash_ok.call() for _ in range(30)])
    svc = ServiceProc(cfg, tmp_path / "service.log")
    try:
        wait_serving(store, svc)
        wait_for((tmp_path / "started-long").exists, 15, "the long job to start")
        # With its gate shut the long job runs on: every quick job must still run, in the
        # other child, even those sent to the long job's child in its batch.
        wait_for(lambda: all(j.refresh().state.value == "succeeded" for j in quick), 30,
                 "the quick jobs, beside the long one")
        assert long.refresh().state.value == "running"
        (tmp_path / "gate-long").write_text("")
        wait_for(lambda: long.refresh().state.value == "succeeded", 30, "the long job")
    finally:
        (tmp_path / "gate-long").write_text("")
        svc.send(signal.SIGTERM)
        svc.wait(30)
    assert all(j.refresh().attempts == 1 for j in quick)


class _Presence:
    def __init__(self, live: dict[str, list[str]]) -> None:
        self.live = live

    def live_queues(self) -> dict[str, list[str]]:
        return self.live


class _View:
    def __init__(self, live: dict[str, list[str]]) -> None:
        self.holder, self.presence = "me", _Presence(live)
        self.got: frozenset[str] | None = None

    def alone(self, queues: frozenset[str]) -> None:
        self.got = queues


def test_only_a_queue_no_other_live_service_serves_holds_jobs() -> None:
    v = _View({"a": ["me"], "b": ["me", "other"], "c": ["other"]})
    alone.look(v)  # type: ignore[arg-type]
    assert v.got == frozenset({"a"})


def test_a_held_thread_jobs_timeout_counts_from_when_it_begins(tmp_path: Path) -> None:
    """Found by a stranger: held jobs of a thread queue timed out while they waited for the
    one worker (4 s after they were claimed) and went dead without running."""
    app = open_app(config(tmp_path, "[queues.held]\nconcurrency = 1\nprefetch = 4\n"))
    jobs = app.enqueue_many([t.held_timed.call(0.6) for _ in range(4)])  # 2.4 s in all
    assert jobrun.testing.run_until_idle(app, timeout=30) == {"succeeded": 4}
    assert [j.refresh().attempts for j in jobs] == [1, 1, 1, 1]


def test_held_async_jobs_wait_for_the_queues_cap(tmp_path: Path) -> None:
    app = open_app(config(tmp_path, "[queues.aio]\nconcurrency = 2\n"))
    t.reset_async()
    app.enqueue_many([t.nap.call(0.2) for _ in range(12)])
    assert jobrun.testing.run_until_idle(app, timeout=30) == {"succeeded": 12}
    assert t.ASYNC["max"] == 2, t.ASYNC  # held ones wait on the loop for the queue's cap


def ledger(folder: Path) -> dict[int, int]:
    runs: dict[int, int] = {}
    if (folder / "ledger").exists():
        for line in (folder / "ledger").read_text().split("\n"):
            if line:
                i = int(line.split()[0])
                runs[i] = runs.get(i, 0) + 1
    return runs


def test_a_drain_hands_back_only_the_held_jobs_that_never_began(tmp_path: Path) -> None:
    cfg = config(tmp_path, "[queues.crash]\nexecutor = \"process\"\nconcurrency = 2\n")
    store, folder = str(tmp_path / "jobs.db"), str(tmp_path)
    app = open_app(cfg)
    app.enqueue(t.gated_pid.name, args=[folder, "a"])
    quick = app.enqueue_many([t.ledger_ok.call(folder, i) for i in range(30)])
    app.enqueue(t.gated_pid.name, args=[folder, "b"])
    quick += app.enqueue_many([t.ledger_ok.call(folder, 30 + i) for i in range(30)])
    svc = ServiceProc(cfg, tmp_path / "service.log")
    try:
        wait_serving(store, svc)
        wait_for(lambda: (tmp_path / "started-a").exists() and
                 (tmp_path / "started-b").exists(), 20, "both long jobs to run")
        svc.send(signal.SIGTERM)  # the drain: held jobs not begun go back, at once
        # Both children are held up: the quick jobs left wait, held; the drain gives them back.
        wait_for(lambda: rows(store, "SELECT count(*) FROM jobs WHERE state = 'queued'")[0][0]
                 > 0, 10, "the held jobs to be handed back")
        (tmp_path / "gate-a").write_text("")
        (tmp_path / "gate-b").write_text("")
        assert svc.wait(30) == 0
    finally:
        (tmp_path / "gate-a").write_text("")
        (tmp_path / "gate-b").write_text("")
        svc.send(signal.SIGKILL)
    runs = ledger(tmp_path)
    for i, j in enumerate(quick):
        r = j.refresh().record
        if r.state.value == "succeeded":
            assert runs.get(i) == 1 and r.attempts == 1, (i, r)
        else:  # handed back: it never ran, and spent nothing
            assert (r.state.value, r.attempts, runs.get(i, 0)) == ("queued", 0, 0), (i, r)


def test_a_childs_finished_jobs_are_recorded_while_a_long_one_runs_after_them(
        tmp_path: Path) -> None:
    cfg = config(tmp_path, "[queues.crash]\nexecutor = \"process\"\nconcurrency = 1\n"
                           "prefetch = 5\n")
    store, folder = str(tmp_path / "jobs.db"), str(tmp_path)
    app = open_app(cfg)
    quick = app.enqueue_many([t.ledger_ok.call(folder, i) for i in range(3)])
    long = app.enqueue(t.gated_pid.name, args=[folder, "long"])
    svc = ServiceProc(cfg, tmp_path / "service.log")
    try:
        wait_serving(store, svc)
        wait_for((tmp_path / "started-long").exists, 20, "the long job to start")
        # One batch, one child: the quick ones ran before it, and are recorded meanwhile.
        wait_for(lambda: all(j.refresh().state.value == "succeeded" for j in quick), 10,
                 "the quick jobs' outcomes while the long one runs")
        assert long.refresh().state.value == "running"
    finally:
        (tmp_path / "gate-long").write_text("")
        svc.send(signal.SIGTERM)
        svc.wait(30)


def test_a_drain_hands_back_held_jobs_while_the_running_one_finishes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import threading

    caplog.set_level(logging.INFO, "jobrun")

    app = open_app(config(tmp_path, "[queues.held]\nconcurrency = 1\nprefetch = 4\n"))
    store = str(tmp_path / "jobs.db")
    jobs = app.enqueue_many([t.held_nap.call(1.5) for _ in range(6)])
    app.start()
    held_sql = "SELECT count(*) FROM jobs WHERE state = 'running' AND started_at IS NULL"
    wait_for(lambda: rows(store, held_sql)[0][0] >= 3, 15, "jobs held ahead")
    stopper = threading.Thread(target=app.stop, kwargs={"timeout": 10})
    stopper.start()
    try:
        # The one thread is busy for 1.5 s: the held jobs go back now, not when it frees.
        wait_for(lambda: rows(store, held_sql)[0][0] == 0 and
                 rows(store, "SELECT count(*) FROM jobs WHERE state = 'running'")[0][0] == 1,
                 1.2, "the held jobs handed back while the running one runs")
    finally:
        stopper.join(20)
    states = sorted(j.refresh().state.value for j in jobs)
    assert states.count("succeeded") == 1 and all(
        j.refresh().attempts == (1 if j.refresh().state.value == "succeeded" else 0)
        for j in jobs), states
    # A count for the held jobs handed back (one line a store round), not a warning each
    # (a stranger's drain of 12,414 held jobs logged as many warnings).
    back = [r for r in caplog.records if r.name == "jobrun.job" and "handed back" in
            r.getMessage()]
    said = [r.getMessage() for r in back]
    assert back and all(r.levelname == "INFO" for r in back), said
    tail = " held job(s) handed back before they began: the service is stopping " \
           "(no attempt counted)"
    assert all(m.endswith(tail) for m in said), said
    assert 3 <= sum(int(m[:-len(tail)]) for m in said) <= 4, said  # the held ones
