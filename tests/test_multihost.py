"""Several hosts on one PostgreSQL store, simulated on one machine: three real `jobrun start`
services with their own holder ids share a database (a schema of their own) and a
per-second cron entry. One is cut off while it runs jobs:

  * its backends terminated (pg_terminate_backend, as a host whose network died) while it is
    SIGSTOPped: the others see its liveness lock free at once and rescue its jobs well
    within the lease; let go again, it finishes its attempts late and their results are
    refused (fencing tokens): every job's kept result is a later attempt's;
  * only SIGSTOPped (alive but partitioned: its locks still held): its leases run out and
    the others take its jobs back.
Throughout, cron fires exactly once per due second, with no gap, whoever leads.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobrun
from crashapp.harness import ServiceProc, proc_state, wait_for
from jobrun.presence import presence_for
from jobrun.store import open_store
from jobrun.store.contract import Store
from support.config import write_config
from support.postgres import fresh_store_url, terminate_backends_of

LEASE = 6.0
WORK = "hostapp.tasks:work"
CRON = '[[cron]]\nname = "tick"\nevery = "1s"\ntask = "hostapp.tasks:tick"\n'


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_store_url() as u:
        yield u


def _services(tmp_path: Path, url: str, n: int = 3) -> list[ServiceProc]:
    procs = []
    for i in range(n):
        folder = tmp_path / f"host{i}"
        folder.mkdir()
        cfg = write_config(folder, imports=["hostapp.tasks"], store=url, shutdown_timeout=5,
                           jobrun=f"lease = {LEASE}\npoll = 1",
                           default_queue={"concurrency": 2}, body=CRON)
        procs.append(ServiceProc(cfg, folder / "service.log"))
    return procs


def _holder_of(store: Store, proc: ServiceProc) -> str:
    presence = presence_for(store)
    found = [h for h in presence.holders() if h.startswith(proc.holder_prefix())]
    return found[0] if found and presence.alive(found[0]) else ""


def _running_of(store: Store, holder: str) -> dict[int, int]:
    """Job id -> attempt of the jobs `holder` runs now."""
    return {r.id: r.attempts for r in store.list_jobs(state="running", limit=100)
            if r.holder == holder}


def _check_cron(store: Store, since: float) -> None:
    """Each due second fired once (jobs, not just cron_fires rows), none skipped, and
    fires went on after `since` (the cut)."""
    ticks = [r.run_at for r in store.list_jobs(limit=100_000)
             if r.task == "hostapp.tasks:tick"]
    assert len(ticks) == len(set(ticks)), "a due second was fired twice"
    ticks.sort()
    gaps = [b - a for a, b in itertools.pairwise(ticks) if abs(b - a - 1.0) > 0.01]
    assert not gaps, f"cron skipped or bunched fires: {gaps}"
    assert ticks and ticks[-1] > since + 2, "cron stopped firing after the cut"


def _run(tmp_path: Path, url: str, cut_off: bool) -> None:
    store = open_store(url)
    procs = _services(tmp_path, url)
    app = jobrun.App(url)
    marks = tmp_path / "marks"
    marks.mkdir()
    try:
        holders = [wait_for(lambda p=p: _holder_of(store, p), 30, "a service to serve")
                   for p in procs]
        assert len(set(holders)) == 3
        wait_for(lambda: presence_for(store).leader() in holders, 10, "a cron leader")
        ids = [app.enqueue(WORK, [str(marks), 4.0]).id for _ in range(6)]

        def started(i: int) -> dict[int, int]:
            """Of the jobs service i holds, those whose attempt began (others wait for a
            slot: claimed ahead)."""
            return {j: a for j, a in _running_of(store, holders[i]).items()
                    if (marks / f"started-{j}-{a}-{procs[i].pid}").exists()}

        v = wait_for(lambda: [i for i in range(3) if started(i)], 20,
                     "a service running jobs")[0]
        proc, holder = procs[v], holders[v]
        proc.send(signal.SIGSTOP)
        wait_for(lambda: proc_state(proc.pid) == "T", 5, "the victim to stop")
        cut = time.time()
        held = _running_of(store, holder)  # what it holds as it is cut off
        running = started(v)  # of which these run now: their results will come late
        assert running and set(running) <= set(held)
        if cut_off:
            assert terminate_backends_of(proc.pid) >= 2  # its pool, its locks, its bell
            wait_for(lambda: not presence_for(store).alive(holder), 2,
                     "the cut-off service's liveness to be seen gone")
        rescued_within = LEASE + 2.5 if not cut_off else LEASE / 2
        wait_for(lambda: not (set(held) & set(_running_of(store, holder))), rescued_within,
                 "the victim's jobs to be rescued")
        rescued_after = time.time() - cut
        if cut_off:  # alive but cut off: the rescue says so, not that it died
            lost = [e["message"] for j in held for e in store.get(j).errors  # type: ignore[union-attr]
                    if e["type"] == "WorkerLost"]
            assert lost and all(m == f"worker lost: service process {holder} lost its "
                                "liveness (its connection was cut off)" for m in lost), lost
        if not cut_off:
            assert rescued_after > LEASE - 1.5, "rescued before its lease ran out"
        proc.send(signal.SIGCONT)
        wait_for(lambda: all(store.get(j).state.value == "succeeded" for j in ids),  # type: ignore[union-attr]
                 60, "every job to succeed")
        for j, attempt in running.items():  # the victim finished its attempts, late
            wait_for(lambda j=j, attempt=attempt: (marks / f"done-{j}-{attempt}-{proc.pid}"
                                                   ).exists(), 15, "the late attempt to end")
        ended = time.time()  # the late outcomes go to the store at the victim's next round
        wait_for(lambda: time.time() > max(cut + 4, ended + 1), 10,
                 "cron to go on after the cut, and the late outcomes to be sent")
        for j, attempt in running.items():
            rec = store.get(j)
            assert rec is not None and rec.attempts > attempt, \
                f"job {j}: the cut-off attempt {attempt}'s late result was kept"
        _check_cron(store, cut)
        assert all(p.alive() for p in procs), "a service died"
        if cut_off:  # let go again, the victim took its liveness back
            wait_for(lambda: presence_for(store).alive(holder), 10, "the victim's liveness")
    finally:
        for p in procs:
            p.send(signal.SIGCONT)
            p.send(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            finally:
                p.kill()
        app.close()
        store.close()
    # presence lives in the database: no lock folder beside the config (a URL is no path)
    assert not [p for p in tmp_path.rglob("*") if "postgresql" in p.name]


def test_a_host_cut_off_loses_its_jobs_at_once_and_its_late_results(tmp_path: Path,
                                                                     url: str) -> None:
    _run(tmp_path, url, cut_off=True)


def test_a_host_stopped_but_connected_loses_its_jobs_when_its_leases_run_out(
        tmp_path: Path, url: str) -> None:
    _run(tmp_path, url, cut_off=False)


def test_a_service_that_lost_its_liveness_does_not_run_a_rescued_job_twice_at_once(
        tmp_path: Path, url: str) -> None:
    """Issue 16: cut off while it ran a job, a service took its liveness back and claimed
    that job again (rescued meanwhile) while its first attempt still ran. Its attempts are
    fenced: the first is asked to stop, and it claims nothing until that attempt ends."""
    store = open_store(url)
    (proc,) = _services(tmp_path, url, n=1)  # concurrency 2: a free slot for the job again
    app = jobrun.App(url)
    marks = tmp_path / "marks"
    marks.mkdir()
    try:
        holder = wait_for(lambda: _holder_of(store, proc), 30, "the service to serve")
        job = app.enqueue(WORK, [str(marks), 4.0])
        first = marks / f"started-{job.id}-1-{proc.pid}"
        wait_for(first.exists, 20, "the first attempt to start")
        assert terminate_backends_of(proc.pid) >= 2  # cut off: its locks are gone
        # Another host's maintenance sees the lock free and takes the job back.
        assert [r[0] for r in store.rescue_holder(
            holder, f"worker lost: {presence_for(store).lost(holder)}", now=time.time())
                ] == [job.id]
        done = marks / f"done-{job.id}-1-{proc.pid}"
        wait_for(lambda: store.get(job.id).state.value == "succeeded",  # type: ignore[union-attr]
                 30, "the job to run again and succeed")
        again = marks / f"started-{job.id}-2-{proc.pid}"
        assert done.exists() and again.exists()
        assert again.stat().st_mtime_ns >= done.stat().st_mtime_ns, \
            "attempt 2 started here while attempt 1 still ran"
        assert "taken back while running: asked to stop" in proc.log_text()
    finally:
        proc.send(signal.SIGTERM)
        try:
            proc.wait(20)
        finally:
            proc.kill()
        app.close()
        store.close()
