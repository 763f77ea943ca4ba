"""A task's own connection to the store (not jobrun's), one per worker thread, for the
`ledger` tables the crash and storm tests count executions in; and the check of those
tables after a kill test. `ledger_conn` is SQLite's; `make_ledger` and `ledger_record` serve
the (job_id, attempt, pid) ledger on both stores."""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import apsw

from jobrun.location import is_postgres

_local = threading.local()


#: The (job_id, attempt, pid) ledger of a kill test: one row per run of a job.
LEDGER = {
    "sqlite": "CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY, "
              "job_id INTEGER NOT NULL, attempt INTEGER NOT NULL, pid INTEGER NOT NULL)",
    "postgres": "CREATE TABLE IF NOT EXISTS ledger (id BIGINT GENERATED ALWAYS AS IDENTITY "
                "PRIMARY KEY, job_id BIGINT NOT NULL, attempt INTEGER NOT NULL, "
                "pid INTEGER NOT NULL)",
}


def make_ledger(store: str) -> None:
    """Create the (job_id, attempt, pid) ledger in `store` (a file or a PostgreSQL URL)."""
    from support.storedb import StoreDB

    db = StoreDB(store)
    try:
        db.write([(LEDGER["postgres" if db.postgres else "sqlite"], None)])
    finally:
        db.close()


def ledger_record(job_id: int, attempt: int, pid: int) -> None:
    """One run, in a transaction of its own, on the store of this service ($JOBRUN_STORE)."""
    store = os.environ["JOBRUN_STORE"]
    if is_postgres(store):
        pg = getattr(_local, "pg", None)
        if pg is None:
            import psycopg
            pg = _local.pg = psycopg.connect(store, autocommit=True,
                                             application_name="jobrun test ledger")
        pg.execute("INSERT INTO ledger (job_id, attempt, pid) VALUES (%s, %s, %s)",
                   (job_id, attempt, pid))
        return
    conn = ledger_conn()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("INSERT INTO ledger (job_id, attempt, pid) VALUES (?, ?, ?)",
                     (job_id, attempt, pid))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def ledger_conn() -> apsw.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = apsw.Connection(os.environ["JOBRUN_STORE"])
        conn.set_busy_timeout(30_000)
        _local.conn = conn
    return conn


@dataclass
class Runs:
    """One job after a kill test: its ledger runs (attempt, pid), its attempts column and
    the WorkerLost entries of its error log."""

    job_id: int
    runs: list[tuple[int, int]]
    attempts: int
    lost: list[dict[str, Any]]


def check_rescued_runs(db: Any, n_jobs: int, killed: Collection[int]) -> list[Runs]:
    """Assert what a kill test wants of every job: all n_jobs succeeded and ran; every run
    but the last was by a SIGKILLed process and the job was taken back from that dead
    holder (a WorkerLost entry naming it), never from a live one; one attempt per claim,
    one run per attempt, in order; the stored result is the last run's (the task returns
    its pid). `db` is a crashapp.harness.Reader on the store."""
    dead = set(killed)
    states = dict(db.all("SELECT state, count(*) FROM jobs GROUP BY state"))
    assert states == {"succeeded": n_jobs}, states
    ledger: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for job_id, attempt, pid in db.all("SELECT job_id, attempt, pid FROM ledger ORDER BY id"):
        ledger[job_id].append((attempt, pid))
    jobs = {r[0]: r[1:] for r in db.all("SELECT id, attempts, result, errors FROM jobs")}
    assert len(jobs) == n_jobs
    assert set(ledger) == set(jobs), "a job succeeded without running"
    out = []
    for job_id, (attempts, result, errors_json) in jobs.items():
        runs = ledger[job_id]
        errors = json.loads(errors_json)
        lost = [e for e in errors if e["type"] == "WorkerLost"]
        assert len(lost) == len(errors), f"job {job_id}: unexpected errors {errors}"
        # Every run but the last was by a process that was SIGKILLed while it ran...
        for _attempt, pid in runs[:-1]:
            assert pid in dead, f"job {job_id} ran again after a run by live pid {pid}: {runs}"
        # ... and each time the job was taken back from its dead holder, never from a live one.
        lost_pids = {int(re.search(r"process (\d+)-", e["message"]).group(1))  # type: ignore[union-attr]
                     for e in lost}
        assert lost_pids <= dead, f"job {job_id} taken from a live service: {errors}"
        assert {pid for _, pid in runs[:-1]} <= lost_pids, f"job {job_id}: {runs}, {errors}"
        # Attempts: one per claim; a claim ends in success or in a rescue.
        assert attempts == len(lost) + 1, f"job {job_id}: {attempts} attempts, {errors}"
        # The stored result is the last run's (the task returns its pid).
        assert json.loads(result) == runs[-1][1], f"job {job_id}: result {result}, runs {runs}"
        # One run per attempt (a claim never runs twice).
        assert all(a < b for (a, _), (b, _) in itertools.pairwise(runs)), runs
        out.append(Runs(job_id, runs, attempts, lost))
    return out
