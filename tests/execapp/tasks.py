"""Tasks for the executor and limit tests.

Each executor test uses its own queue names, so one config can make a queue `process`
without touching the others. Side effects a test must see from another process (a child,
a `jobrun start` service) go to files in a folder passed as an argument, to the job's own
return value, or to a `ledger` table in the store file; in-process effects (async and
per-key counters) go to module globals read by the test.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import threading
import time
from typing import Any

import jobrun
from support.files import touch, wait_file
from support.ledger import ledger_conn as _ledger_conn

app = jobrun.App()


# -- process executor ----------------------------------------------------------------------
@app.task(queue="proc")
def span(seconds: float) -> dict[str, Any]:
    """Works `seconds`; returns its pid and its run window (CLOCK_MONOTONIC, host-wide)."""
    t0 = time.monotonic()
    time.sleep(seconds)
    return {"pid": os.getpid(), "t0": t0, "t1": time.monotonic()}


@app.task(queue="mixed", executor="process")
def task_level_process() -> int:
    """A process task on a queue whose executor is `thread`."""
    return os.getpid()


@app.task(queue="mixed")
def thread_pid() -> int:
    return os.getpid()


@app.task(queue="recycle")
def recycle_pid() -> int:
    return os.getpid()


@app.task(queue="proc", timeout=1, max_attempts=2, retry_base=0.01, retry_cap=0.01)
def stubborn(folder: str) -> str:
    """First attempt: ignores SIGTERM, starts a grandchild `sleep 1000` (which inherits the
    ignored SIGTERM), records both pids and hangs. A later attempt returns at once."""
    if jobrun.context().attempt > 1:
        return "second attempt"
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    grandchild = subprocess.Popen(["sleep", "1000"])
    touch(os.path.join(folder, "stubborn-pids"), f"{os.getpid()} {grandchild.pid}")
    while True:
        time.sleep(1)


@app.task(queue="proc")
def forever(folder: str) -> None:
    """Starts a grandchild `sleep 1000`, records both pids, and never returns."""
    grandchild = subprocess.Popen(["sleep", "1000"])
    touch(os.path.join(folder, "forever-pids"), f"{os.getpid()} {grandchild.pid}")
    while True:
        time.sleep(1)


@app.task(queue="crash", retry_base=0.01, retry_cap=0.01)
def crash(how: str, folder: str) -> None:
    """Dies mid-job, the way `how` says, after recording its pid."""
    ctx = jobrun.context()
    touch(os.path.join(folder, f"crash-{ctx.job_id}-{ctx.attempt}"), str(os.getpid()))
    if how == "exit":
        os._exit(3)
    elif how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "segv":
        ctypes.string_at(0)
    raise ValueError(f"unknown crash {how!r}")


@app.task(queue="crash")
def gated_pid(folder: str, name: str) -> int:
    """Records its pid as `started-NAME`, waits for `gate-NAME`, returns its pid."""
    touch(os.path.join(folder, f"started-{name}"), str(os.getpid()))
    if not wait_file(os.path.join(folder, f"gate-{name}"), 60):
        raise RuntimeError(f"gate-{name} never opened")
    return os.getpid()


@app.task(queue="crash")
def crash_ok() -> int:
    return os.getpid()


# -- async ---------------------------------------------------------------------------------
ASYNC: dict[str, Any] = {"now": 0, "max": 0, "cancelled": [], "started": []}


def reset_async() -> None:
    ASYNC.update(now=0, max=0, cancelled=[], started=[])


@app.task(queue="aio")
async def nap(seconds: float) -> str:
    """Counts how many run at once (one loop thread: no lock needed)."""
    ctx = jobrun.context()
    ASYNC["started"].append(ctx.job_id)
    ASYNC["now"] += 1
    ASYNC["max"] = max(ASYNC["max"], ASYNC["now"])
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        ASYNC["cancelled"].append((ctx.job_id, time.monotonic()))
        raise
    finally:
        ASYNC["now"] -= 1
    return threading.current_thread().name


# -- thread timeouts and cancellation ------------------------------------------------------
@app.task(queue="slow", timeout=0.5, max_attempts=1)
def overstay(folder: str) -> str:
    """Runs past its timeout: blocks until `gate` exists, then returns a (late) value."""
    touch(os.path.join(folder, "overstay-started"), str(time.time()))
    if not wait_file(os.path.join(folder, "gate"), 60):
        raise RuntimeError("gate never opened")
    touch(os.path.join(folder, "overstay-returned"), str(time.time()))
    return "late result"


@app.task(queue="slow")
def after_overstay(folder: str) -> str:
    touch(os.path.join(folder, "after-started"), str(time.time()))
    return "ran"


@app.task(queue="threads")
def until_cancelled(folder: str) -> str:
    """Polls `jobrun.context().cancelled`; records when it saw it, then stops on its own."""
    ctx = jobrun.context()
    touch(os.path.join(folder, "until-started"), str(time.monotonic()))
    deadline = time.monotonic() + 60
    while not ctx.cancelled:
        if time.monotonic() > deadline:
            raise RuntimeError("never cancelled")
        time.sleep(0.01)
    touch(os.path.join(folder, "until-saw-cancel"), str(time.monotonic()))
    return "stopped on my own"


@app.task(queue="threads")
def ignores_cancel(folder: str) -> int:
    """Counts its runs in `ignored-runs`, then waits for `gate-ignore`, never looking at
    `jobrun.context().cancelled`."""
    runs = os.path.join(folder, "ignored-runs")
    n = int(open(runs).read()) + 1 if os.path.exists(runs) else 1
    touch(runs, str(n))
    if not wait_file(os.path.join(folder, "gate-ignore"), 60):
        raise RuntimeError("gate-ignore never opened")
    return n


# -- limits --------------------------------------------------------------------------------




@app.task(queue="capped")
def ledger_span(seconds: float) -> int:
    """Works `seconds`, then writes (job_id, pid, t0, t1) to the store's `ledger` table."""
    t0 = time.monotonic()
    time.sleep(seconds)
    t1 = time.monotonic()
    conn = _ledger_conn()
    with conn:
        conn.execute("INSERT INTO ledger (job_id, pid, t0, t1) VALUES (?, ?, ?, ?)",
                     (jobrun.context().job_id, os.getpid(), t0, t1))
    return os.getpid()


KEYED: dict[str, Any] = {"lock": threading.Lock(), "now": {}, "max": {}, "total": 0,
                         "total_max": 0}


def reset_keyed() -> None:
    with KEYED["lock"]:
        KEYED.update(now={}, max={}, total=0, total_max=0)


@app.task(queue="keyed", concurrency_key="tenant:{tenant_id}", key_concurrency=2)
def keyed(tenant_id: str, seconds: float) -> None:
    """Counts how many run at once, per tenant and in total."""
    with KEYED["lock"]:
        KEYED["now"][tenant_id] = KEYED["now"].get(tenant_id, 0) + 1
        KEYED["max"][tenant_id] = max(KEYED["max"].get(tenant_id, 0), KEYED["now"][tenant_id])
        KEYED["total"] += 1
        KEYED["total_max"] = max(KEYED["total_max"], KEYED["total"])
    try:
        time.sleep(seconds)
    finally:
        with KEYED["lock"]:
            KEYED["now"][tenant_id] -= 1
            KEYED["total"] -= 1


@app.task(queue="qrated")
def queue_rated() -> None:
    """The queue's rate limit (TOML) holds it back."""


@app.task(queue="trated", rate_limit="5/s")
def task_rated() -> None:
    """Its own rate limit holds it back."""


@app.task(queue="krated", concurrency_key="tenant:{tenant_id}", key_rate_limit="5/s")
def key_rated(tenant_id: str) -> None:
    """Each tenant's rate limit holds it back, independently of the others."""


@app.task(queue="fair", concurrency_key="tenant:{tenant_id}", key_concurrency=2)
def fair(tenant_id: str) -> None:
    time.sleep(0.001)


@app.task(queue="slow2", timeout=0.5, max_attempts=2, retry_base=0.01, retry_cap=0.01)
def overstay_then_quick(folder: str) -> str:
    """Attempt 1 runs past its timeout (until `gate` exists); attempt 2 returns at once."""
    attempt = jobrun.context().attempt
    touch(os.path.join(folder, f"overstay2-started-{attempt}"), str(time.time()))
    if attempt > 1:
        return "second attempt"
    if not wait_file(os.path.join(folder, "gate"), 60):
        raise RuntimeError("gate never opened")
    touch(os.path.join(folder, "overstay2-returned"), str(time.time()))
    return "late result"


@app.task(queue="slow2")
def slow2_pid() -> int:
    return os.getpid()


@app.task(queue="slow2")
def rendezvous(folder: str, me: str, other: str) -> str:
    """Succeeds only if `other` runs at the same time (both slots of the queue are free)."""
    touch(os.path.join(folder, f"rv-{me}"))
    if not wait_file(os.path.join(folder, f"rv-{other}"), 5):
        raise RuntimeError(f"{other} did not run alongside {me}")
    return me


@app.task(queue="trated")
def trated_free() -> None:
    """On the same queue as `task_rated`, without a limit of its own."""


@app.task(queue="held")
def held_nap(seconds: float) -> int:
    """A thread job of a queue that holds jobs ahead (tests/test_held.py)."""
    time.sleep(seconds)
    return os.getpid()


@app.task(queue="held", timeout=1, max_attempts=1)
def held_timed(seconds: float) -> int:
    """A thread job with a timeout, on a queue that holds jobs ahead (tests/test_held_service.py):
    its time counts from when it begins, not from when it was held."""
    time.sleep(seconds)
    return os.getpid()


@app.task(queue="crash")
def ledger_ok(folder: str, i: int) -> int:
    """A quick process job that writes one line per execution (tests/test_held_service.py)."""
    with open(os.path.join(folder, "ledger"), "a") as f:
        f.write(f"{i} {os.getpid()}\n")
    return i
