"""Poison jobs in a real `jobrun start` process: a process job that segfaults on every
attempt goes `dead` after its attempts (each "worker process died: signal 11"); a process
job that never returns (and has started a grandchild) is killed, group and all, at its
timeout, every attempt, then goes `dead`. Neither stops other jobs: a steady stream of
ordinary jobs on the same two process queues and on a thread queue keeps succeeding all
along, measured per second (every 1 s window of the poison period has successes on each
queue; none of them was charged with a neighbour's crash; their latency stays low).

Short (default): one of each poison job. `--long`: six waves of them.
Tasks: tests/execapp/tasks.py (`crash`, `forever`, `crash_ok`, `span`) and stormapp
(`tick_ok`).
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import stormapp

import jobrun
from crashapp.harness import Reader, ServiceProc, proc_state, wait_for, wait_serving
from execapp import tasks as t

TIMEOUT = 1.0
QUEUES = f"""
[queues.crash]
executor = "process"
concurrency = 2
[queues.proc]
executor = "process"
concurrency = 2
timeout = "{TIMEOUT:g}s"
retry_base = "0.05s"
retry_cap = "0.05s"
[queues.steady]
concurrency = 2
"""
# The producer (this process) registers the tasks too: their queues come from the registry.
OTHERS = {"crash": t.crash_ok.name, "proc": t.span.name, "steady": stormapp.tick_ok.name}
FEED_EVERY = 0.05


def alive(pid: int) -> bool:
    try:
        return proc_state(pid) not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.torture
def test_poison_jobs_go_dead_and_other_jobs_keep_flowing(
        tmp_path: Path, long: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    waves, segv_attempts = (6, 5) if long else (1, 3)
    stormapp.on_path(monkeypatch)
    cfg = stormapp.write_config(tmp_path, queues=QUEUES, concurrency=2,
                                imports=("execapp.tasks", "stormapp"),
                                jobrun_extra="shutdown_timeout = 5")
    store = str(tmp_path / "jobs.db")
    folder = str(tmp_path)
    app = jobrun.App.from_config(cfg)
    others: list[int] = []
    grandkids: set[int] = set()
    stop_feed = threading.Event()
    feed_errors: list[BaseException] = []

    def feed() -> None:
        """Ordinary work, a job per queue every 50 ms; notes the poison's pids as it goes."""
        try:
            while not stop_feed.wait(FEED_EVERY):
                others.extend(j.id for j in app.enqueue_many(
                    [jobrun.Call(OTHERS["crash"]), jobrun.Call(OTHERS["proc"], (0.002,)),
                     jobrun.Call(OTHERS["steady"])]))
                try:
                    grandkids.update(int(p) for p in
                                     (tmp_path / "forever-pids").read_text().split())
                except (FileNotFoundError, ValueError):
                    pass
        except BaseException as exc:  # pragma: no cover - reported by the test
            feed_errors.append(exc)

    svc = ServiceProc(cfg, tmp_path / "service.log")
    feeder = threading.Thread(target=feed, daemon=True)
    db = Reader(store)
    poison: list[tuple[str, int]] = []
    try:
        wait_serving(store, svc)
        feeder.start()

        def flowing() -> bool:
            rows = db.all("SELECT queue, count(*) FROM jobs WHERE state = 'succeeded' "
                          "GROUP BY queue")
            return all(dict(rows).get(q, 0) >= 10 for q in OTHERS)
        wait_for(flowing, 30, "the ordinary jobs to flow on every queue")

        # When: poison jobs, a wave at a time (one of each kind in flight).
        t_poison = time.time()
        for _ in range(waves):
            segv = app.enqueue(t.crash.name, args=["segv", folder],
                               max_attempts=segv_attempts)
            hang = app.enqueue(t.forever.name, args=[folder], max_attempts=2)
            poison += [("segv", segv.id), ("hang", hang.id)]
            pair = (segv.id, hang.id)
            wait_for(lambda pair=pair: db.one(
                "SELECT count(*) FROM jobs WHERE id IN (?, ?) AND state IN ('dead', "
                "'succeeded')", pair) == 2, 30, "the poison jobs to go dead")
        t_end = time.time()
        time.sleep(0.5)
        stop_feed.set()
        feeder.join(5)
        assert not feed_errors, feed_errors
        assert svc.alive(), svc.log_text()[-3000:]
        marks = ",".join("?" * len(others))
        wait_for(lambda: db.one(f"SELECT count(*) FROM jobs WHERE id IN ({marks}) AND state "
                                "NOT IN ('succeeded', 'dead')", others) == 0, 20,
                 "the ordinary jobs to finish")
        svc.send(signal.SIGTERM)
        assert svc.wait(15) == 0, svc.log_text()[-3000:]
    finally:
        stop_feed.set()
        svc.kill()
        app.close()
        for pid in grandkids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)

    # Then: each poison job is dead after its attempts, for the right reason.
    for kind, job_id in poison:
        state, attempts, errors, started_at = db.all(
            "SELECT state, attempts, errors, started_at FROM jobs WHERE id = ?", (job_id,))[0]
        errors = json.loads(errors)
        if kind == "segv":
            assert (state, attempts) == ("dead", segv_attempts), (job_id, state, attempts)
            assert [e["type"] for e in errors] == ["WorkerDied"] * segv_attempts, errors
            assert all("signal 11" in e["message"] for e in errors), errors
        else:
            assert (state, attempts) == ("dead", 2), (job_id, state, attempts)
            assert [e["type"] for e in errors] == ["TaskTimeout"] * 2, errors
            assert all("timed out" in e["message"] for e in errors), errors
            # Killed at its timeout (the last attempt: started_at is its start).
            took = errors[-1]["at"] - started_at
            assert TIMEOUT <= took < TIMEOUT + 1.0, took
    assert grandkids, "the never-returning job never recorded its pids"
    wait_for(lambda: not any(alive(p) for p in grandkids), 5,
             "the hung jobs' children and grandchildren to be gone")

    # And: the other jobs all succeeded at their first attempt, all along the poison period.
    marks = ",".join("?" * len(others))
    rows = db.all(f"SELECT queue, state, attempts, enqueued_at, finished_at FROM jobs "
                  f"WHERE id IN ({marks})", others)
    bad = [r for r in rows if (r[1], r[2]) != ("succeeded", 1)]
    assert not bad, f"ordinary jobs hit by the poison: {bad[:5]}"
    bins: dict[str, Counter[int]] = {q: Counter() for q in OTHERS}
    lat: dict[str, list[float]] = {q: [] for q in OTHERS}
    for queue, _state, _attempts, enq, fin in rows:
        if t_poison <= fin <= t_end:
            bins[queue][math.floor(fin - t_poison)] += 1
            lat[queue].append(fin - enq)
    span = math.floor(t_end - t_poison)
    report = []
    for q in OTHERS:
        empty = [s for s in range(span) if not bins[q][s]]
        assert not empty, f"queue {q}: no job succeeded in second(s) {empty} of the poison " \
                          f"period ({dict(bins[q])})"
        ls = sorted(lat[q])
        report.append(f"{q}: {len(ls) / (t_end - t_poison):.1f}/s, latency p50 "
                      f"{ls[len(ls) // 2] * 1000:.0f} ms, max {ls[-1] * 1000:.0f} ms")
        assert ls[-1] < 2.0, f"queue {q}: an ordinary job waited {ls[-1]:.2f}s"
    print(f"poison period {t_end - t_poison:.1f}s ({waves} wave(s)); fed "
          f"{1 / FEED_EVERY:.0f}/s per queue; " + "; ".join(report))
    db.close()
