"""Crash safety with real processes, on both stores: a service working through 2,000 jobs is
SIGKILLed ten times and restarted. Every job ends `succeeded`; a job runs more than once only
if it was in flight at a kill; the jobs of a dead holder come back by liveness (a flock, or
on PostgreSQL an advisory lock that ends with the dead process's session: about a second),
not after a lease timeout; the SQLite store file stays intact.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobrun
from crashapp.harness import (
    Reader,
    ServiceProc,
    task,
    wait_for,
    wait_serving,
    write_config,
)
from jobrun.lock import HolderLock, holder_alive
from support.ledger import check_rescued_runs, make_ledger
from support.postgres import any_store

N_JOBS = 2000
KILLS = 10
#: After this many kills a second long-lived service joins (before the next restart); from
#: then on it must take back each killed service's running jobs by itself.
SECOND_SERVICE_AFTER = 7
RESCUE_WITHIN = 2.0


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Both stores: a SQLite file in tmp_path, a PostgreSQL schema of its own."""
    with any_store(request.param, str(tmp_path)) as where:
        yield where


@pytest.mark.slow
@pytest.mark.torture
def test_sigkill_ten_times_every_job_succeeds_once_unless_in_flight(
        tmp_path: Path, request: pytest.FixtureRequest, location: str) -> None:
    n_jobs, kills, second_after = N_JOBS, KILLS, SECOND_SERVICE_AFTER
    if request.config.getoption("--long"):
        n_jobs, kills, second_after = 10_000, 30, 20
    seed = int(os.environ.get("JOBRUN_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"crash test seed: {seed} (JOBRUN_CRASH_SEED={seed} to replay)")
    store = location
    cfg = write_config(tmp_path, "jobrun.toml", concurrency=8, max_attempts=50, store=store)
    cfg_b = write_config(tmp_path, "second.toml", concurrency=2, max_attempts=50, store=store)

    # Given: 2,000 jobs in the store, each writing a ledger row when it runs.
    app = jobrun.App.from_config(cfg)
    app.enqueue_many([jobrun.Call(task("record")) for _ in range(n_jobs)])
    make_ledger(store)
    db = Reader(store)

    def succeeded() -> int:
        return int(db.one("SELECT count(*) FROM jobs WHERE state = 'succeeded'"))

    def ledger_of(pid: int) -> int:
        return int(db.one("SELECT count(*) FROM ledger WHERE pid = ?", (pid,)))

    procs: list[ServiceProc] = []
    killed: set[int] = set()
    rescue_delays: list[float] = []
    second: ServiceProc | None = None
    try:
        # When: a service is SIGKILLed at a random point of its work, ten times.
        for k in range(kills):
            svc = ServiceProc(cfg, tmp_path / f"service-{k}.log")
            procs.append(svc)
            remaining = n_jobs - succeeded()
            kills_left = kills - k
            # A random amount of work by this process, leaving work for the kills after it.
            target = rng.randint(1, max(2, remaining // (4 * kills_left)))

            def worked(svc: ServiceProc = svc, target: int = target) -> bool:
                if not svc.alive():
                    raise AssertionError(f"service died on its own:\n{svc.log_text()[-3000:]}")
                return ledger_of(svc.pid) >= target
            wait_for(worked, 30, f"service {k} to run {target} jobs")
            time.sleep(rng.uniform(0, 0.02))  # a random moment, not a synchronisation
            assert succeeded() < n_jobs, f"all work done before kill {k}: test too slow"
            t_kill = time.time()
            os.kill(svc.pid, signal.SIGKILL)
            svc.proc.wait(10)
            killed.add(svc.pid)
            print(f"kill {k + 1}: pid {svc.pid} after {ledger_of(svc.pid)} runs "
                  f"(target {target}); {n_jobs - succeeded()} job(s) left")

            if second is not None:
                # Then: the other live service takes back the dead one's running jobs
                # itself, by liveness (no lease has expired: the default lease is 60 s).
                prefix = svc.holder_prefix() + "%"
                wait_for(lambda prefix=prefix: not db.one(
                    "SELECT count(*) FROM jobs WHERE state = 'running' AND holder LIKE ?",
                    (prefix,)), 10, f"the jobs of killed service {svc.pid} to come back")
                ats = [e["at"] for (errors,) in db.all(
                    "SELECT errors FROM jobs WHERE errors LIKE ?", (f"%process {svc.pid}-%",))
                    for e in json.loads(errors)
                    if e["type"] == "WorkerLost" and f"process {svc.pid}-" in e["message"]]
                if ats:
                    rescue_delays.append(max(ats) - t_kill)
            if k + 1 == second_after:
                second = ServiceProc(cfg_b, tmp_path / "second.log")
                procs.append(second)
                wait_serving(store, second)

        # Then: a last service (with the second one) finishes the work.
        last = ServiceProc(cfg, tmp_path / "last.log")
        procs.append(last)
        wait_for(lambda: succeeded() == n_jobs, max(45, n_jobs // 100), "all jobs to succeed")
        assert second is not None
        for s in (last, second):
            s.send(signal.SIGTERM)
        for s in (last, second):
            assert s.wait(15) == 0, s.log_text()[-3000:]
    finally:
        for p in procs:
            p.kill()
        app.close()

    assert len(killed) == kills
    twice = 0
    for job in check_rescued_runs(db, n_jobs, killed):
        # Each run but the last ended in a rescue.
        assert len(job.lost) >= len(job.runs) - 1, \
            f"job {job.job_id}: runs {job.runs}, errors {job.lost}"
        twice += len(job.runs) > 1
    print(f"{twice} job(s) ran more than once (in flight at one of {kills} kills); "
          f"rescue delays by the live service: {[round(d, 3) for d in rescue_delays]}")

    # The kills with a live second service: its jobs came back by liveness, within ~1 s.
    assert rescue_delays, "no kill left running jobs for the second service to take back"
    assert max(rescue_delays) < RESCUE_WITHIN, rescue_delays

    if not db.postgres:
        assert db.one("PRAGMA integrity_check") == "ok"
    db.close()


SWEEPER = """
import os, sys, time
from jobrun.lock import holder_alive, live_holders
store, stop = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 30
while not os.path.exists(stop) and time.monotonic() < deadline:
    for _ in range(100):
        for h in live_holders(store):   # a service's sweep of the other holders
            holder_alive(store, h)
"""


@pytest.mark.torture
def test_a_live_holder_is_never_judged_dead(tmp_path: Path) -> None:
    """Rescue trusts `holder_alive`: it must never say "dead" of a holder that holds its lock,
    and a starting service must always get its own (fresh) lock. (SQLite only: a race of
    the flock files beside a SQLite store; PostgreSQL's liveness is an advisory lock taken
    in one statement, with no file to sweep.)

    Another service's sweep (`live_holders` -> `holder_alive`: at every service start and
    every 10 s) may look at a holder's lock file while that holder is still starting, between
    `os.open(O_CREAT)` and `flock` in `FileLock.acquire`. The sweep then takes the lock,
    concludes "dead" and unlinks the file. Either the starting holder's flock fails (`jobrun
    start` refuses: "holder lock ... is taken"), or it flocks the orphaned inode and runs with
    no lock file: every later `holder_alive` says "dead" and its running jobs are rescued (and
    run twice) while it is alive."""
    store = str(tmp_path / "jobs.db")
    stop = tmp_path / "stop"
    sweeper = subprocess.Popen([sys.executable, "-c", SWEEPER, store, str(stop)])
    acquired = refused = lost = 0
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and not (lost or refused):
            # A service starting: a new holder id each time, as `new_holder_id()` gives.
            name = f"starting-{acquired}"
            lock = HolderLock(store, name)
            if not lock.acquire():
                refused += 1
                continue
            acquired += 1
            if not holder_alive(store, name):
                lost += 1
            lock.release(unlink=True)
    finally:
        stop.touch()
        sweeper.wait(10)
    assert acquired > 100
    assert (refused, lost) == (0, 0), (
        f"{refused} fresh holder lock(s) refused, {lost} held lock(s) judged dead, in "
        f"{acquired} acquisitions next to a concurrent sweep")
