"""Workflows run by real `jobrun start` subprocesses (crash, kill storm tests).

Every step writes a ledger row in the store file itself, on a connection of its own, when
it starts: (workflow job id, step name, pid, wall time). A step that ran again after its
record committed would show a ledger row later than its step's `finished` time.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import apsw

import jobrun
from support.config import write_config as _write_config
from support.ledger import ledger_conn as _ledger_conn

app = jobrun.App()
LEDGER = ("CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL, "
          "step TEXT NOT NULL, pid INTEGER NOT NULL, at REAL NOT NULL)")


def ledger_schema(store: str) -> None:
    conn = apsw.Connection(store)
    conn.set_busy_timeout(30_000)
    conn.execute(LEDGER)
    conn.close()


def _ledger(step: str) -> None:
    conn = _ledger_conn()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("INSERT INTO ledger (job_id, step, pid, at) VALUES (?, ?, ?, ?)",
                     (jobrun.context().job_id, step, os.getpid(), time.time()))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@app.step
def mark(name: str) -> str:
    _ledger(name)
    time.sleep(0.005)
    return name


@app.workflow(max_attempts=100)
def napper(seconds: float) -> list[str]:
    """A step, a durable sleep, a step."""
    a = mark("before")
    jobrun.sleep(seconds)
    return [a, mark("after")]


@app.task(queue="proc", max_attempts=100)
def heavy(i: int) -> int:
    """A child on a process queue."""
    _ledger(f"child-{i}")
    time.sleep(0.01)
    return i * i


@app.workflow(max_attempts=100)
def storm(n: int) -> list[object]:
    """Five steps: a step, a gather of 3 process-queue children, a 1 s sleep, two steps."""
    out: list[object] = [mark("s1")]
    out.append(jobrun.gather([heavy.call(n * 10 + i) for i in range(3)]))
    jobrun.sleep(1.0)
    out.append(mark("s4"))
    out.append(mark("s5"))
    return out


@app.workflow(executor="process", max_attempts=5)
def in_child(n: int) -> list[object]:
    """A workflow whose body runs in a child process of the service."""
    a = mark("p1")
    jobrun.sleep(0.2)
    kids = jobrun.gather([heavy.call(n)])
    return [a, kids, jobrun.wait_event(f"child:{n}", timeout=0.1), os.getpid()]


PAID = "CREATE TABLE IF NOT EXISTS paid (n INTEGER NOT NULL, pid INTEGER NOT NULL)"
#: While this file (next to the store) exists, `pay` SIGKILLs its own service right after its
#: once block ends, before the step returns: between the block's writes and the step's record.
CRASH_FLAG = ".crash-after-once"


@app.step
def pay(n: int) -> str:
    with jobrun.once(f"pay:{n}") as op:
        if not op.done:
            op.connection.execute("INSERT INTO paid (n, pid) VALUES (?, ?)", (n, os.getpid()))
    if os.path.exists(os.environ["JOBRUN_STORE"] + CRASH_FLAG):
        os.kill(os.getpid(), signal.SIGKILL)
    return f"paid {n}"


@app.workflow(max_attempts=100)
def payer(n: int) -> list[str]:
    """A step whose once block writes through op.connection, then a step."""
    return [pay(n), mark("after")]


def write_config(folder: Path, *, concurrency: int = 8) -> str:
    return _write_config(folder, imports=["flowapp.tasks"], shutdown_timeout=5,
                         jobrun="poll = 0.2", default_queue={"concurrency": concurrency},
                         body='[queues.proc]\nexecutor = "process"\nconcurrency = 2\n')
