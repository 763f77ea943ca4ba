"""Workflows across real crashes: a `jobrun start` SIGKILLed during a durable sleep."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import jobrun
from crashapp.harness import Reader, ServiceProc, wait_for, wait_serving
from flowapp import tasks as flowapp
from support.config import write_config


def test_a_sleep_survives_a_sigkilled_service(tmp_path: Path) -> None:
    # Given: one service, and a workflow that records a step then sleeps 2 s.
    cfg = flowapp.write_config(tmp_path)
    store = str(tmp_path / "jobs.db")
    app = jobrun.App.from_config(cfg)
    flowapp.ledger_schema(store)
    svc = ServiceProc(cfg, tmp_path / "svc-1.log")
    db = Reader(store)
    try:
        wait_serving(store, svc)
        job = app.enqueue("flowapp.tasks:napper", [2.0])
        # The sleep has begun when its step is recorded and the job is parked in the store
        # (the park is recorded with the service's next round, up to record_delay later).
        wait_for(lambda: db.one("SELECT state FROM steps WHERE job_id = ? AND seq = 2",
                                (job.id,)) == "waiting"
                 and db.one("SELECT state FROM jobs WHERE id = ?", (job.id,)) == "scheduled",
                 20, "the sleep to begin")
        # When: the only service is SIGKILLed during the sleep, and started again 5 s
        # later (after the sleep's end), as the scenario says.
        svc.send(signal.SIGKILL)
        svc.wait(10)
        time.sleep(5.0)  # the scenario: no service while the sleep ends
        assert db.one("SELECT state FROM jobs WHERE id = ?", (job.id,)) == "scheduled"
        svc = ServiceProc(cfg, tmp_path / "svc-2.log")
        started = time.monotonic()
        # Then: it resumes at once and runs the rest once.
        wait_for(lambda: db.one("SELECT state FROM jobs WHERE id = ?", (job.id,))
                 == "succeeded", 20, "the workflow to finish")
        assert time.monotonic() - started < 10
        assert app.job(job.id).result(timeout=1) == ["before", "after"]
        ledger = db.all("SELECT step FROM ledger WHERE job_id = ? ORDER BY id", (job.id,))
        assert [r[0] for r in ledger] == ["before", "after"]
        assert db.one("SELECT attempts FROM jobs WHERE id = ?", (job.id,)) == 1
        assert db.one("PRAGMA integrity_check") == "ok"
    finally:
        db.close()
        svc.kill()
        app.close()


def test_a_workflow_body_on_a_process_queue(tmp_path: Path) -> None:
    cfg = flowapp.write_config(tmp_path)
    store = str(tmp_path / "jobs.db")
    app = jobrun.App.from_config(cfg)
    flowapp.ledger_schema(store)
    svc = ServiceProc(cfg, tmp_path / "svc.log")
    try:
        wait_serving(store, svc)
        job = app.enqueue("flowapp.tasks:in_child", [4])
        a, kids, event, pid = job.result(timeout=30)
        assert (a, kids, event) == ("p1", [16], None)
        assert pid != svc.pid  # the body ran in a child process
        assert app.job(job.id).record.attempts == 1
    finally:
        svc.kill()
        app.close()


def test_a_child_ending_on_another_service_wakes_its_parent_at_once(tmp_path: Path) -> None:
    # Given: two services with a fallback poll of 60 s: one runs only the workflow, the other
    # only its child's task (on another queue).
    store = str(tmp_path / "jobs.db")
    cfgs = [write_config(tmp_path, name=f"{who}.toml", imports=[f"flowapp.split_{who}"],
                         jobrun="poll = 60", body="[queues.kids]\nconcurrency = 2\n")
            for who in ("parent", "child")]
    app = jobrun.App.from_config(cfgs[0])
    svcs = [ServiceProc(c, tmp_path / f"svc-{i}.log") for i, c in enumerate(cfgs)]
    db = Reader(store)
    try:
        for s in svcs:
            wait_serving(store, s)
        # When: the workflow gathers one child, which the other service runs and ends.
        job = app.enqueue("flowapp.split_parent:parent", [1])
        wait_for(lambda: db.one("SELECT state FROM jobs WHERE parent = ?", (job.id,))
                 == "succeeded", 20, "the child to succeed on the other service")
        # Then: the parent's service is rung by the child's: it resumes well before its poll.
        wait_for(lambda: db.one("SELECT state FROM jobs WHERE id = ?", (job.id,))
                 == "succeeded", 20, "the parent to resume before its 60 s poll")
        assert app.job(job.id).result(timeout=1) == [0]
    finally:
        db.close()
        for s in svcs:
            s.kill()
        app.close()


def test_a_steps_once_writes_commit_with_its_record(tmp_path: Path) -> None:
    # Given: one service, and a workflow whose step writes through op.connection in a once
    # block, and SIGKILLs its service right after the block, before the step returns.
    cfg = flowapp.write_config(tmp_path)
    store = str(tmp_path / "jobs.db")
    app = jobrun.App.from_config(cfg)
    flowapp.ledger_schema(store)
    db = Reader(store)
    db.all(flowapp.PAID)
    flag = Path(store + flowapp.CRASH_FLAG)
    flag.touch()
    svc = ServiceProc(cfg, tmp_path / "svc-1.log")
    try:
        wait_serving(store, svc)
        job = app.enqueue("flowapp.tasks:payer", [7])
        # When: the service dies between the block's end and the step's return.
        assert svc.wait(30) == -signal.SIGKILL
        # Then: the block's write, its once key and the step's record are all absent
        # (one transaction, never committed), not the writes without the record.
        assert db.one("SELECT count(*) FROM paid") == 0
        assert db.one("SELECT count(*) FROM processed_operations WHERE key = 'pay:7' "
                      "AND state = 'done'") == 0
        assert db.one("SELECT count(*) FROM steps WHERE job_id = ?", (job.id,)) == 0
        # And: started again without the crash, the step runs again and everything commits
        # once, together.
        flag.unlink()
        svc = ServiceProc(cfg, tmp_path / "svc-2.log")
        assert app.job(job.id).result(timeout=30) == ["paid 7", "after"]
        assert db.all("SELECT n FROM paid") == [(7,)]
        assert db.one("SELECT state FROM steps WHERE job_id = ? AND seq = 1",
                      (job.id,)) == "succeeded"
        assert db.one("PRAGMA integrity_check") == "ok"
    finally:
        db.close()
        svc.kill()
        app.close()
