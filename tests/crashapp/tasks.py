"""Tasks run by real `jobrun start` subprocesses in the crash, drain and fencing tests.

Side effects go to files or to a `ledger` table in the store itself (a SQLite file or a
PostgreSQL schema), so the test can tell which process ran which attempt, and how many times.
"""

from __future__ import annotations

import os
import random
import time

import jobrun
from support.files import touch as _touch
from support.files import wait_file as _wait_file
from support.ledger import ledger_record as _ledger_record

app = jobrun.App()





@app.task
def record() -> int:
    """Write `(job_id, attempt, pid)` to the ledger (its own transaction), then work 2-10 ms.

    Returns the pid, so the stored result names the process whose run was recorded."""
    ctx = jobrun.context()
    _ledger_record(ctx.job_id, ctx.attempt, os.getpid())
    time.sleep(random.uniform(0.002, 0.010))
    return os.getpid()


@app.task
def short(folder: str) -> str:
    """Says it started, waits for `go` (sent after the signal), then works 0.5 s."""
    _touch(os.path.join(folder, "short-started"), str(os.getpid()))
    if not _wait_file(os.path.join(folder, "go"), 30):
        raise RuntimeError("no go")
    time.sleep(0.5)
    return "short done"


@app.task
def long(folder: str) -> str:
    """First run: 30 s of work. A later run (the marker exists) is fast."""
    marker = os.path.join(folder, "long-ran")
    if os.path.exists(marker):
        _touch(os.path.join(folder, "long-second"), str(os.getpid()))
        return "second run"
    _touch(marker, str(os.getpid()))
    time.sleep(30)
    return "first run"


@app.task
def gated(folder: str) -> int:
    """Says it started (per pid), blocks until the `gate` file exists, returns the pid."""
    pid = os.getpid()
    _touch(os.path.join(folder, f"started-{pid}"))
    if not _wait_file(os.path.join(folder, "gate"), 120):
        raise RuntimeError("gate never opened")
    _touch(os.path.join(folder, f"finished-{pid}"))
    return pid


def _wait_stop(folder: str, name: str) -> None:
    """Says it started, then works until the service asks it to stop (30 s at most)."""
    _touch(os.path.join(folder, f"{name}-started"), str(os.getpid()))
    ctx = jobrun.context()
    deadline = time.monotonic() + 30
    while not ctx.cancelled and time.monotonic() < deadline:
        time.sleep(0.01)


@app.task
def coop_return(folder: str) -> str:
    """Stops early when told, returning as if done: its work did not finish."""
    if os.path.exists(os.path.join(folder, "coop_return-ran")):
        return "second run"
    _touch(os.path.join(folder, "coop_return-ran"))
    _wait_stop(folder, "coop_return")
    return "stopped early"


@app.task(max_attempts=1)
def coop_raise(folder: str) -> str:
    """Raises when told to stop (max_attempts=1: a counted failure would make it dead)."""
    if os.path.exists(os.path.join(folder, "coop_raise-ran")):
        return "second run"
    _touch(os.path.join(folder, "coop_raise-ran"))
    _wait_stop(folder, "coop_raise")
    raise RuntimeError("stopping")


@app.task
def coop_interrupted(folder: str) -> str:
    """Tells the drain apart from a cancel, and asks to be handed back."""
    if os.path.exists(os.path.join(folder, "coop_interrupted-ran")):
        return "second run"
    _touch(os.path.join(folder, "coop_interrupted-ran"))
    _wait_stop(folder, "coop_interrupted")
    if jobrun.context().stopping:
        raise jobrun.Interrupted()
    return "cancelled?"
