"""Kill storm: jobs of 5 to 50 ms worked by two `jobrun start` processes, one of which is
SIGKILLed every 0.5 s (at random: a busy one, or one still starting) and restarted at once.

Every job succeeds; each ran at least once; a job ran again only after a run by a process
that was SIGKILLed (ledger rows carry the pid, as in tests/test_crash.py); no job stays
`running` under a dead holder for more than a moment; `PRAGMA integrity_check` is ok.

Short (default): 1,000 jobs, about 10 s of storm. `--long`: 10,000 jobs, 60 s of storm.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
import stormapp

import jobrun
from crashapp.harness import Reader, ServiceProc, wait_for, wait_serving
from support.ledger import check_rescued_runs

KILL_EVERY = 0.5
#: A dead holder's running jobs must be back within this (README: "within about a second").
STUCK_AFTER = 2.5


@pytest.mark.torture
def test_kill_storm_every_job_succeeds_reruns_only_after_kills(
        tmp_path: Path, long: bool, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    n_jobs, run_for, conc = (10_000, 60.0, 8) if long else (1_000, 10.0, 4)
    rng = random.Random(seed)
    stormapp.on_path(monkeypatch)
    cfg = stormapp.write_config(tmp_path, concurrency=conc, max_attempts=100,
                                jobrun_extra="shutdown_timeout = 10")
    store = str(tmp_path / "jobs.db")
    app = jobrun.App.from_config(cfg)

    def enqueue(k: int) -> int:
        if k > 0:
            app.enqueue_many([jobrun.Call("stormapp:work", (rng.uniform(5, 50),))
                              for _ in range(k)])
        return max(0, k)

    # Work arrives all through the storm: a tenth at once, the rest at each kill.
    ticks = int(run_for / KILL_EVERY)
    enqueued = enqueue(n_jobs // 10)
    stormapp.ledger_schema(store)
    db = Reader(store)

    def succeeded() -> int:
        return int(db.one("SELECT count(*) FROM jobs WHERE state = 'succeeded'"))

    n_logs = 0

    def spawn() -> ServiceProc:
        nonlocal n_logs
        n_logs += 1
        return ServiceProc(cfg, tmp_path / f"svc-{n_logs}.log")

    slots = [spawn(), spawn()]
    everyone = list(slots)
    killed: dict[int, float] = {}  # pid -> monotonic time of its SIGKILL
    stuck: list[tuple[int, int, float]] = []  # (job, dead pid, seconds since its kill)
    seen_dead = 0.0  # the longest a job was seen `running` under a killed holder
    t_start = time.monotonic()
    try:
        # When: every 0.5 s one of the two services, at random, is SIGKILLed and restarted.
        next_kill = t_start + KILL_EVERY
        for tick in range(1, ticks + 1):
            # Meanwhile (sampled every 0.1 s): no job stays `running` under a holder killed
            # a while ago.
            while True:
                now = time.monotonic()
                for job_id, holder in db.all(
                        "SELECT id, holder FROM jobs WHERE state = 'running'"):
                    pid = stormapp.pid_of(holder)
                    if pid in killed:
                        seen_dead = max(seen_dead, now - killed[pid])
                        if now - killed[pid] > STUCK_AFTER:
                            stuck.append((job_id, pid, now - killed[pid]))
                if now >= next_kill:
                    break
                time.sleep(min(0.1, next_kill - now))
            next_kill += KILL_EVERY
            first = n_jobs // 10
            enqueued += enqueue(min(n_jobs, first + (n_jobs - first) * tick // (ticks - 1))
                                - enqueued)
            i = rng.randrange(2)
            victim = slots[i]
            if not victim.alive():
                raise AssertionError(f"service {victim.pid} died on its own:\n"
                                     + victim.log_text()[-3000:])
            os.kill(victim.pid, signal.SIGKILL)
            victim.proc.wait(10)
            killed[victim.pid] = time.monotonic()
            slots[i] = spawn()
            everyone.append(slots[i])
        storm = time.monotonic() - t_start
        left = n_jobs - succeeded()

        def under_dead() -> list[tuple[int, str]]:
            return [(j, h) for j, h in db.all(
                "SELECT id, holder FROM jobs WHERE state = 'running'")
                if stormapp.pid_of(h) in killed]
        # No job stays `running` under a dead holder: those of the last kill come back too.
        wait_for(lambda: not under_dead(), STUCK_AFTER, "no job running under a dead holder")
        # Then: the two services left finish the work, and drain on SIGTERM.
        assert enqueued == n_jobs
        wait_for(lambda: succeeded() == n_jobs, 60 + n_jobs / 50, "all jobs to succeed")
        finish = time.monotonic() - t_start
        for s in slots:
            wait_serving(store, s)  # a SIGTERM before Python set its handler just kills
        for s in slots:
            s.send(signal.SIGTERM)
        for s in slots:
            assert s.wait(20) == 0, s.log_text()[-3000:]
    finally:
        for p in everyone:
            p.kill()
        app.close()

    kills = len(killed)
    print(f"storm {storm:.1f}s: {kills} SIGKILLs, {left} job(s) left at its end; all "
          f"{n_jobs} succeeded after {finish:.1f}s; a job was seen `running` under a killed "
          f"holder up to {seen_dead:.2f}s after the kill")
    assert not stuck, f"jobs left `running` under a dead holder: {stuck[:10]}"
    assert kills >= (100 if long else 15), "too few kills: the storm ended too early"

    twice = 0
    for job in check_rescued_runs(db, n_jobs, killed):
        # The last run was the last attempt.
        assert job.runs[-1][0] == job.attempts, \
            f"job {job.job_id}: runs {job.runs}, attempts {job.attempts}"
        twice += len(job.runs) > 1
    print(f"{twice} job(s) ran more than once, each after a run by a SIGKILLed process")
    assert twice > 0, "no kill hit a running job: the storm tested nothing"
    logs = "\n".join(p.log_path.read_text(errors="replace") for p in everyone)
    assert "Traceback" not in logs and "store round failed" not in logs, \
        [ln for ln in logs.splitlines() if "Traceback" in ln or "failed" in ln][:10]
    assert db.one("PRAGMA integrity_check") == "ok"
    db.close()
