"""Tasks and process drivers of the storm tests (kill storm, drain, busy store, poison, soak).

Imported as `stormapp` by `jobrun start` subprocesses and by the drivers: the tests put
tests/torture on their PYTHONPATH (`env()`), so the task names (`stormapp:work`, ...) are
the same in every process. Side effects go to a `ledger` table in the store file itself,
written on a connection of the task's own (not jobrun's), so the test can tell which
process ran which attempt of which job, and when (CLOCK_MONOTONIC, host-wide).

Never run this file as `__main__` (its tasks would be named `__main__:...`): the drivers
are started as `python -c "import stormapp; stormapp.busy_main(...)"`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import apsw

import jobrun
from support.config import write_config as _write_config
from support.files import touch as _touch
from support.files import wait_file as _wait_file
from support.ledger import ledger_conn as _ledger_conn

app = jobrun.App()

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
LEDGER = ("CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL, "
          "attempt INTEGER NOT NULL, pid INTEGER NOT NULL, t0 REAL, t1 REAL)")


def env() -> dict[str, str]:
    """os.environ with tests/ and tests/torture first on PYTHONPATH (for subprocesses)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), str(TESTS), e.get("PYTHONPATH", "")) if p)
    e.pop("JOBRUN_STORE", None)
    e.pop("JOBRUN_CONFIG", None)
    return e


def ledger_schema(store: str) -> None:
    conn = apsw.Connection(store)
    conn.set_busy_timeout(30_000)
    conn.execute(LEDGER)
    conn.close()






def _ledger(t0: float | None, t1: float | None) -> None:
    ctx = jobrun.context()
    conn = _ledger_conn()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("INSERT INTO ledger (job_id, attempt, pid, t0, t1) VALUES (?, ?, ?, ?, ?)",
                     (ctx.job_id, ctx.attempt, os.getpid(), t0, t1))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@app.task
def work(ms: float) -> int:
    """Kill storm: a ledger row `(job_id, attempt, pid)` first (committed), then `ms` of work.

    Returns the pid, so the stored result names the process whose run was recorded."""
    _ledger(time.monotonic(), None)
    time.sleep(ms / 1000.0)
    return os.getpid()


@app.task
def span(ms: float) -> int:
    """Busy store: `ms` of work, then one ledger row with the run's window [t0, t1]."""
    t0 = time.monotonic()
    time.sleep(ms / 1000.0)
    _ledger(t0, time.monotonic())
    return os.getpid()


@app.task
def noop() -> None:
    """Soak: nothing at all."""


@app.task(queue="steady")
def tick_ok() -> int:
    """Poison test: the ordinary work that must keep flowing beside the poison jobs."""
    return os.getpid()


@app.task
def drain_short(folder: str) -> str:
    """Drain test: a ledger row, `short-started`, waits for `go` (sent after SIGTERM), then
    0.3 s of work."""
    _ledger(time.monotonic(), None)
    _touch(os.path.join(folder, "short-started"), str(os.getpid()))
    if not _wait_file(os.path.join(folder, "go"), 30):
        raise RuntimeError("no go")
    time.sleep(0.3)
    return "short done"


@app.task
def drain_long(folder: str) -> str:
    """Drain test: a ledger row; then, on its first run, a job whose drain cannot complete:
    it ignores its cancellation (a thread cannot be stopped) and has started a non-daemon
    thread that never ends, so the process cannot exit after the drain either. A later run
    (the `long-ran` marker exists) returns at once."""
    _ledger(time.monotonic(), None)
    marker = os.path.join(folder, "long-ran")
    if os.path.exists(marker):
        return "second run"
    threading.Thread(target=time.sleep, args=(3600,), daemon=False,
                     name="stubborn-non-daemon").start()
    _touch(marker, str(os.getpid()))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # jobrun.context().cancelled is ignored on purpose
        time.sleep(0.05)
    return "first run"


# -- drivers (run in their own processes) ----------------------------------------------------
def busy_main(config: str, n: int, total: int, tag: str, out: str, start_at: float,
              spread: float) -> None:
    """One busy-store process: an in-process service AND a producer on the same store.

    Enqueues `n` `span` jobs (single enqueues and small batches mixed, the way an app would),
    reading job states as it goes, spread over `spread` seconds (so enqueues and claims
    overlap all along), while its own service works; then waits until every job
    of the store is finished (`total`: all processes' jobs). Every exception the API raises is
    written to `out` (JSON), with this process's counts."""
    import logging
    import random

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                try:
                    records.append(f"{record.levelname} {record.name}: {record.getMessage()}")
                except Exception:  # pragma: no cover
                    records.append(str(record.msg))

    logging.getLogger("jobrun").addHandler(Keep())
    logging.getLogger("jobrun").setLevel(logging.INFO)
    errors: list[str] = []
    result: dict[str, Any] = {"pid": os.getpid(), "tag": tag, "errors": errors,
                              "log": records, "enqueued": []}
    rng = random.Random(f"{tag}-{os.getpid()}")
    a = jobrun.App.from_config(config)
    os.environ["JOBRUN_STORE"] = a.store_path  # for the tasks' ledger connections
    try:
        a.start()
        while time.time() < start_at:  # all four start enqueueing at the same moment
            time.sleep(0.001)
        ids: list[int] = []
        t0 = time.monotonic()
        while len(ids) < n:
            try:
                if rng.random() < 0.5:
                    ids.append(a.enqueue("stormapp:span", args=[rng.uniform(2, 10)]).id)
                else:
                    k = min(n - len(ids), rng.randint(2, 20))
                    ids.extend(j.id for j in a.enqueue_many(
                        [jobrun.Call("stormapp:span", (rng.uniform(2, 10),))
                         for _ in range(k)]))
                if rng.random() < 0.05:  # and an app reads its jobs too
                    a.job(rng.choice(ids)).refresh()
                ahead = t0 + spread * len(ids) / n - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            except Exception:
                errors.append(traceback.format_exc())
                if len(errors) > 20:
                    break
        result["enqueue_s"] = time.monotonic() - t0
        result["enqueued"] = ids
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                left = a.store.read("SELECT count(*) FROM jobs WHERE state NOT IN "
                                    "('succeeded', 'dead', 'cancelled')")[0][0]
                count = a.store.read("SELECT count(*) FROM jobs")[0][0]
            except Exception:
                errors.append(traceback.format_exc())
                time.sleep(0.1)
                continue
            if left == 0 and count >= total:
                break
            time.sleep(0.05)
        result["done_s"] = time.monotonic() - t0
    except Exception:
        errors.append(traceback.format_exc())
    finally:
        try:
            a.close()  # drains its service
        except Exception:
            errors.append(traceback.format_exc())
        with open(out + ".tmp", "w", encoding="utf-8") as f:
            json.dump(result, f)
        os.replace(out + ".tmp", out)
    sys.exit(0)


# -- test-side helpers -------------------------------------------------------------------------
def write_config(folder: Path, name: str = "jobrun.toml", *, jobrun_extra: str = "",
                 queues: str = "", concurrency: int = 8, max_attempts: int = 5,
                 imports: tuple[str, ...] = ("stormapp",)) -> str:
    """A config beside the store `jobs.db` in `folder`, importing `imports`."""
    return _write_config(folder, imports=imports, name=name, jobrun=jobrun_extra,
                         default_queue={"concurrency": concurrency,
                                        "max_attempts": max_attempts}, body=queues)


def on_path(monkeypatch: Any) -> None:
    """Put tests/torture on PYTHONPATH for this test's subprocesses (crashapp.harness's
    ServiceProc adds tests/ to whatever PYTHONPATH it finds)."""
    monkeypatch.setenv("PYTHONPATH", env()["PYTHONPATH"])
    monkeypatch.delenv("JOBRUN_STORE", raising=False)


def pid_of(holder: str | None) -> int | None:
    """Holder ids are `<pid>-<random>`."""
    if not holder:
        return None
    try:
        return int(holder.split("-", 1)[0])
    except ValueError:
        return None


def proc_status(pid: int) -> dict[str, Any]:
    """VmRSS (KiB), Threads, the number of open fds and what they are (`links`), of a live
    process, from /proc."""
    out: dict[str, Any] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                out[key] = int(value.split()[0])
    links = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:  # closed meanwhile
            pass
    out["fds"] = len(links)
    out["links"] = sorted(links)
    return out


@app.task(queue="procq")
def stubborn_forever(folder: str) -> str:
    """Drain test (process queue): a ledger row; on its first run, ignores SIGTERM, starts a
    grandchild `sleep 1000` (which inherits the ignored SIGTERM), records both pids, and never
    returns. A later run (the `stubborn-ran` marker exists) returns at once."""
    import signal
    import subprocess

    _ledger(time.monotonic(), None)
    marker = os.path.join(folder, "stubborn-ran")
    if os.path.exists(marker):
        return "second run"
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    grandchild = subprocess.Popen(["sleep", "1000"])
    _touch(os.path.join(folder, "stubborn-pids"), f"{os.getpid()} {grandchild.pid}")
    _touch(marker)
    while True:
        time.sleep(1)
