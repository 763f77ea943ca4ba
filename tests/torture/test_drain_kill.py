"""Drain, then kill: a `jobrun start` process gets SIGTERM with a short and a long job
running. The short one finishes during the drain and is recorded; the long one cannot be
stopped (a thread job that ignores its cancellation and has started a non-daemon thread, so
the process cannot exit after the drain either). The "supervisor" (this test, as systemd's
TimeoutStopSec would) SIGKILLs the process when it is still there after its deadline.

Two deadlines:
- `after_drain`: the supervisor waits past `shutdown_timeout` (as the README asks of
  TimeoutStopSec): the drain has handed the long job back `queued`, attempt not counted;
- `during_drain`: a supervisor shorter than `shutdown_timeout` kills in the middle of the
  drain: the long job is still `running` under a dead holder, and is rescued (attempt
  counted, WorkerLost) by the next service.
Either way the short job is `succeeded` and never runs again, and exactly one job (the long
one) runs again, once, in the next service.

And a process job that ignores SIGTERM, drained while another service serves its queue (capped
at 1): it must not be handed back before its process is stopped, or it runs twice at once.
FOUND: it is (`Service.stop` records `released` at the deadline; the child is stopped later,
SIGTERM then SIGKILL after KILL_GRACE, by its slot thread): the other service starts the job
about 1 s before the first run's process dies.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import stormapp

import jobrun
from crashapp.harness import Reader, ServiceProc, proc_state, wait_for, wait_serving

SHUTDOWN_TIMEOUT = 2.5


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a zombie is dead, just not reaped)."""
    try:
        return proc_state(pid) not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def _job(db: Reader, job_id: int) -> dict[str, Any]:
    cols = ("state", "attempts", "result", "holder", "errors")
    d = dict(zip(cols, db.all(f"SELECT {', '.join(cols)} FROM jobs WHERE id = ?",
                              (job_id,))[0]))
    d["result"] = json.loads(d["result"]) if d["result"] is not None else None
    d["errors"] = json.loads(d["errors"])
    return d


@pytest.mark.torture
@pytest.mark.parametrize("kill_at", ["after_drain", "during_drain"])
def test_drain_then_sigkill_exactly_one_job_runs_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kill_at: str) -> None:
    stormapp.on_path(monkeypatch)
    cfg = stormapp.write_config(tmp_path, jobrun_extra=f"shutdown_timeout = {SHUTDOWN_TIMEOUT}")
    store = str(tmp_path / "jobs.db")
    folder = str(tmp_path)
    app = jobrun.App.from_config(cfg)
    stormapp.ledger_schema(store)
    procs: list[ServiceProc] = []
    try:
        # Given: the two jobs running, and some other work that finished before the signal.
        others = app.enqueue_many([jobrun.Call("stormapp:work", (1,)) for _ in range(20)])
        short = app.enqueue("stormapp:drain_short", args=[folder])
        long = app.enqueue("stormapp:drain_long", args=[folder])
        svc = ServiceProc(cfg, tmp_path / "first.log")
        procs.append(svc)
        wait_serving(store, svc)
        db = Reader(store)
        wait_for(lambda: os.path.exists(tmp_path / "short-started")
                 and os.path.exists(tmp_path / "long-ran"), 20, "both jobs to start")
        wait_for(lambda: db.one("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 20,
                 20, "the other jobs")

        # When: SIGTERM; the short job is let go (so it finishes during the drain).
        t0 = time.monotonic()
        svc.send(signal.SIGTERM)
        (tmp_path / "go").touch()
        deadline = SHUTDOWN_TIMEOUT + 1.0 if kill_at == "after_drain" else SHUTDOWN_TIMEOUT / 2
        wait_for(lambda: _job(db, short.id)["state"] == "succeeded", deadline,
                 "the short job to be recorded during the drain")
        time.sleep(max(0.0, t0 + deadline - time.monotonic()))  # the supervisor's deadline
        if kill_at == "after_drain":
            # The drain cannot finish the long job: it hands it back at shutdown_timeout and
            # exits 0 although the job's thread goes on (jobrun start exits after a drain).
            assert svc.proc.wait(10) == 0, svc.log_text()[-3000:]
        else:
            # The drain could not complete: the process is still there at the deadline.
            assert svc.alive(), f"exited {svc.proc.returncode}:\n{svc.log_text()[-3000:]}"
        # Supervisor: SIGKILL (a no-op after a completed drain).
        if svc.alive():
            os.kill(svc.pid, signal.SIGKILL)
        svc.proc.wait(10)
        log = svc.log_text()
        s = _job(db, short.id)
        lj = _job(db, long.id)
        assert (s["state"], s["result"], s["attempts"]) == ("succeeded", "short done", 1), s
        if kill_at == "after_drain":
            # The drain handed it back: queued, attempt not counted, no holder.
            assert "handed back" in log, log[-3000:]
            assert (lj["state"], lj["attempts"], lj["holder"]) == ("queued", 0, None), lj
        else:
            # Killed mid-drain: still `running` under the dead holder.
            assert (lj["state"], lj["attempts"]) == ("running", 1), lj
            assert lj["holder"].startswith(svc.holder_prefix()), lj

        # Then: the next service runs the long job again, and nothing else.
        again = ServiceProc(cfg, tmp_path / "second.log")
        procs.append(again)
        wait_for(lambda: _job(db, long.id)["state"] == "succeeded", 20, "the long job's rerun")
        later = app.enqueue("stormapp:work", args=[1])  # the new service is up and working
        wait_for(lambda: _job(db, later.id)["state"] == "succeeded", 20, "a later job")
        again.send(signal.SIGTERM)
        assert again.wait(SHUTDOWN_TIMEOUT + 10) == 0, again.log_text()[-3000:]

        lj = _job(db, long.id)
        if kill_at == "after_drain":
            assert (lj["result"], lj["attempts"], lj["errors"]) == ("second run", 1, []), lj
        else:
            assert (lj["result"], lj["attempts"]) == ("second run", 2), lj
            assert [e["type"] for e in lj["errors"]] == ["WorkerLost"], lj
        runs = Counter(job_id for (job_id,) in db.all("SELECT job_id FROM ledger"))
        again_ran = {j: n for j, n in runs.items() if n > 1}
        assert again_ran == {long.id: 2}, f"jobs that ran more than once: {again_ran}"
        assert set(runs) == {j.id for j in others} | {short.id, long.id, later.id}
        states = dict(db.all("SELECT state, count(*) FROM jobs GROUP BY state"))
        assert states == {"succeeded": 23}, states
        print(f"{kill_at}: SIGKILL {deadline:.2f}s after SIGTERM (shutdown_timeout "
              f"{SHUTDOWN_TIMEOUT}s); long job back as "
              f"{'queued (released)' if kill_at == 'after_drain' else 'running -> rescued'}")
        db.close()
    finally:
        for p in procs:
            p.kill()
        app.close()


@pytest.mark.torture
def test_drain_hands_back_a_process_job_only_once_its_process_is_stopped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process job that ignores SIGTERM is running when its service gets SIGTERM; another
    service serves the same queue, whose concurrency is 1 (a cap across the host). The drain
    must not hand the job back while its process still runs: the other service would start
    it beside the old run (two executions of one job at once, two jobs of a queue capped at
    1). The old child dies only at SIGKILL, KILL_GRACE (2 s) after the drain's SIGTERM."""
    stormapp.on_path(monkeypatch)
    cfg = stormapp.write_config(tmp_path, jobrun_extra="shutdown_timeout = 1",
                                queues='[queues.procq]\nexecutor = "process"\nconcurrency = 1\n')
    store = str(tmp_path / "jobs.db")
    folder = str(tmp_path)
    app = jobrun.App.from_config(cfg)
    stormapp.ledger_schema(store)
    procs: list[ServiceProc] = []
    try:
        job = app.enqueue(stormapp.stubborn_forever.name, args=[folder])
        first = ServiceProc(cfg, tmp_path / "first.log")
        procs.append(first)
        wait_serving(store, first)
        pids = tmp_path / "stubborn-pids"
        wait_for(pids.exists, 20, "the stubborn job to start")
        child, grandchild = (int(p) for p in pids.read_text().split())
        other = ServiceProc(cfg, tmp_path / "other.log")
        procs.append(other)
        wait_serving(store, other)
        db = Reader(store)

        # When: SIGTERM to the first service; watch the old child and the job.
        first.send(signal.SIGTERM)
        handed_back = child_gone = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (handed_back is None or child_gone is None):
            now = time.monotonic()
            holder = _job(db, job.id)["holder"]
            if handed_back is None and not (holder or "").startswith(first.holder_prefix()):
                handed_back = now
            if child_gone is None and not alive(child):
                child_gone = now
            time.sleep(0.005)
        assert first.wait(15) == 0, first.log_text()[-3000:]
        wait_for(lambda: _job(db, job.id)["state"] == "succeeded", 20, "the rerun elsewhere")
        runs = db.all("SELECT pid, t0 FROM ledger WHERE job_id = ? ORDER BY id", (job.id,))
        assert handed_back is not None and child_gone is not None
        assert len(runs) == 2 and runs[0][0] == child, runs
        rerun_at = runs[1][1]
        print(f"handed back {handed_back - rerun_at:+.2f}s, old child gone "
              f"{child_gone - rerun_at:+.2f}s, relative to the rerun's start by pid "
              f"{runs[1][0]}")
        other.send(signal.SIGTERM)
        assert other.wait(15) == 0, other.log_text()[-3000:]
        wait_for(lambda: not alive(grandchild), 5, "the old run's grandchild to be stopped")
        # Then: the rerun started only after the old run's process was gone.
        assert child_gone <= rerun_at, (
            f"the job ran again (pid {runs[1][0]}) {child_gone - rerun_at:.2f}s before its "
            f"first run's process {child} was stopped: two executions at once, on a queue "
            f"capped at 1")
        assert handed_back >= child_gone, \
            f"handed back {child_gone - handed_back:.2f}s before its process was stopped"
        db.close()
    finally:
        for p in procs:
            p.kill()
        app.close()
        pid_file = tmp_path / "stubborn-pids"
        if pid_file.exists():
            for pid in (int(p) for p in pid_file.read_text().split()):
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
