"""Kill storm for workflows: workflows of 5 steps (one a gather of 3 children on a process
queue, one a 1 s sleep) worked by two `jobrun start` processes, one SIGKILLed every 0.5 s
and restarted at once.

Every workflow succeeds with the right result; every step's side effect (a ledger row
written when the step starts) ran at least once; none ran again after its record committed
(no ledger row later than its step's `finished`, or its child job's `finished_at`);
`PRAGMA integrity_check` is ok. Short (default): 50 workflows, 8 s of storm; `--long`:
500 workflows, 30 s.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

import jobrun
from crashapp.harness import Reader, ServiceProc, wait_for, wait_serving
from flowapp import tasks as flowapp

KILL_EVERY = 0.5
#: ledger step name -> the step's call number in flowapp.tasks.storm
SEQ = {"s1": 1, "s4": 4, "s5": 5}


@pytest.mark.torture
def test_kill_storm_every_workflow_succeeds_no_step_reruns_after_its_record(
        tmp_path: Path, long: bool, seed: int) -> None:
    n, run_for = (500, 30.0) if long else (50, 8.0)
    rng = random.Random(seed)
    cfg = flowapp.write_config(tmp_path, concurrency=8)
    store = str(tmp_path / "jobs.db")
    app = jobrun.App.from_config(cfg)
    flowapp.ledger_schema(store)
    db = Reader(store)
    logs = 0

    def spawn() -> ServiceProc:
        nonlocal logs
        logs += 1
        return ServiceProc(cfg, tmp_path / f"svc-{logs}.log")

    # Both in the same instant on the ledger's fresh file (not WAL yet): neither may die
    # at start-up (tests/test_start_race.py holds that race open on purpose).
    slots = [spawn(), spawn()]
    everyone = list(slots)
    try:
        for s in slots:
            wait_serving(store, s)
        # Given: n workflows; when: every 0.5 s one service is SIGKILLed and restarted.
        jobs = app.enqueue_many([jobrun.Call("flowapp.tasks:storm", (i,)) for i in range(n)])
        ids = [j.id for j in jobs]
        end = time.monotonic() + run_for
        kills = 0
        while time.monotonic() < end:
            time.sleep(KILL_EVERY)  # the storm's rhythm, not a wait for a condition
            i = rng.randrange(2)
            victim = slots[i]
            if not victim.alive():
                raise AssertionError(f"service {victim.pid} died on its own:\n"
                                     + victim.log_text()[-3000:])
            os.kill(victim.pid, signal.SIGKILL)
            victim.proc.wait(10)
            kills += 1
            slots[i] = spawn()
            everyone.append(slots[i])

        def done() -> int:
            return int(db.one("SELECT count(*) FROM jobs WHERE state = 'succeeded' AND id IN "
                              f"({','.join(map(str, ids))})"))
        # Then: every workflow succeeds, with the right result.
        wait_for(lambda: done() == n, 60 + n / 5, "every workflow to succeed", pause_cap=0.2)
        for k, job_id in enumerate(ids):
            assert app.job(job_id).result(timeout=1) == [
                "s1", [(k * 10 + c) ** 2 for c in range(3)], "s4", "s5"]
        # Each step's side effect ran at least once, and never after its record committed.
        finished = {(j, s): f for j, s, f in db.all(
            "SELECT job_id, seq, finished FROM steps WHERE state = 'succeeded'")}
        child_done = {j: f for j, f in db.all(
            "SELECT id, finished_at FROM jobs WHERE parent IS NOT NULL")}
        ran: set[tuple[int, str]] = set()
        late = []
        for job_id, step, at in db.all("SELECT job_id, step, at FROM ledger"):
            ran.add((job_id, step))
            limit = finished.get((job_id, SEQ[step])) if step in SEQ else child_done[job_id]
            if limit is None or at > limit:
                late.append((job_id, step, at, limit))
        assert not late, f"steps ran again after their record committed: {late[:5]}"
        for job_id in ids:
            assert {(job_id, s) for s in SEQ} <= ran
        assert len([1 for (_, s) in ran if s.startswith("child-")]) == 3 * n
        assert db.one("PRAGMA integrity_check") == "ok"
        reruns = int(db.one("SELECT count(*) - count(DISTINCT job_id || step) FROM ledger"))
        print(f"workflow storm: {n} workflows, {kills} kills, {reruns} step re-runs "
              "(each before its record committed)")
    finally:
        db.close()
        for s in everyone:
            s.kill()
        app.close()
