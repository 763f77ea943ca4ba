"""jobrun and Huey's SqliteHuey as bench_core.py and bench_io.py run them: the same tasks on
both sides, the service and consumer subprocesses and their handshake, reading each side's
store through its own SQLite library, and the stores of queued jobs the runs copy.

One copy for both benchmarks (bench_io.py used to import bench_core.py for these). Unlike
_common.py this module imports the stdlib sqlite3: Huey's side reads its store with it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from _common import HERE, Subprocess, job_states, open_apsw, poll_count
from _common import Row as _Row

if TYPE_CHECKING:
    import jobrun

HUEY_NAME = "bench"
# Huey consumer polling: its defaults, and the fastest sensible settings (what we compare to).
HUEY_DEFAULT_POLL = {"initial_delay": 0.1, "backoff": 1.15, "max_delay": 10.0}
HUEY_FAST_POLL = {"initial_delay": 0.001, "backoff": 1.0, "max_delay": 0.01}


# ---------------------------------------------------------------------------------------
# Tasks: the same names in the producer and in the service subprocesses.
# ---------------------------------------------------------------------------------------
def jobrun_tasks(app: jobrun.App) -> tuple[Any, Any]:
    """Register the benchmark tasks on a jobrun App: (noop, stamp)."""

    @app.task(name="bench:noop")
    def noop(i: int = 0) -> None:
        return None

    @app.task(name="bench:stamp")
    def stamp() -> float:
        return time.time()  # when the job started: the latency probe

    return noop, stamp


def make_huey(path: str, **storage: Any) -> tuple[Any, Any, Any]:
    """A SqliteHuey on `path` with the benchmark tasks: (huey, noop, stamp)."""
    from huey import SqliteHuey

    huey = SqliteHuey(HUEY_NAME, filename=path, **storage)

    @huey.task(name="bench_noop")  # type: ignore[untyped-decorator]
    def noop(i: int = 0) -> int:
        return 1  # not None, so the result store records the completion (as jobrun does)

    @huey.task(name="bench_stamp")  # type: ignore[untyped-decorator]
    def stamp() -> float:
        return time.time()

    @huey.task(name="bench_none")  # type: ignore[untyped-decorator]
    def none(i: int = 0) -> None:
        return None  # no result stored: Huey at its fastest (bench_io.py's throughput row)

    huey.bench_none = none
    return huey, noop, stamp


def jobrun_settings(concurrency: int) -> Any:
    from jobrun.config import QueueConfig, Settings

    return Settings(queues={"default": QueueConfig("default", concurrency=concurrency)})


# ---------------------------------------------------------------------------------------
# Subprocess sides: started by `Child`, they print "ready", wait for "go" on stdin, print
# "started <time.time()>" just before starting, and run until SIGTERM.
# ---------------------------------------------------------------------------------------
def await_go() -> None:
    """The sides' handshake: "ready", wait for "go", "started <time>" just before serving."""
    print("ready", flush=True)
    sys.stdin.readline()
    print(f"started {time.time()!r}", flush=True)


def serve(argv: list[str]) -> int | None:
    """Run the hidden sub-command (`_jobrun-service`, `_huey-consumer`) argv names, if it
    names one: its exit status; None otherwise."""
    if argv and argv[0] == "_jobrun-service":
        return serve_jobrun(argv[1], int(argv[2]))
    if argv and argv[0] == "_huey-consumer":
        return serve_huey(argv[1], int(argv[2]), json.loads(argv[3]))
    return None


def serve_jobrun(store: str, concurrency: int) -> int:
    import logging

    import jobrun
    from jobrun.service import Service

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    jobrun_tasks(jobrun.App(store, settings=jobrun_settings(concurrency)))
    service = Service(store, jobrun_settings(concurrency))
    stops = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # inherited by the service's threads
    await_go()
    service.start()
    signal.sigwait(stops)  # no wake-ups of our own while idle
    service.stop(10.0)
    return 0


def serve_huey(path: str, workers: int, poll: dict[str, float]) -> int:
    import logging

    from huey.consumer import Consumer

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    huey, _, _ = make_huey(path)
    consumer = Consumer(huey, workers=workers, periodic=False, check_worker_health=False,
                        worker_type="thread", **poll)
    await_go()
    consumer.run()  # exits on SIGTERM/SIGINT
    return 0


class Child(Subprocess):
    """A service subprocess: bench_core.py running one of the hidden sub-commands `serve`
    dispatches. Huey names a task by its module: this one in the producer and in the child
    alike, since neither runs it as __main__."""

    script = os.path.join(HERE, "bench_core.py")

    def __init__(self, args: list[str], log_path: str) -> None:
        super().__init__([sys.executable, self.script, *args], log_path,
                         stop_wait=20, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._expect("ready")

    def _expect(self, word: str) -> str:
        assert self.proc.stdout is not None
        line: str = self.proc.stdout.readline()
        if not line.startswith(word):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"service subprocess said {line!r}, not {word!r}:\n{self.errors()}")
        return line

    def go(self) -> float:
        """Start serving; returns the wall time the child took just before starting."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return float(self._expect("started").split()[1])


# ---------------------------------------------------------------------------------------
# Results, and reading each side's store
# ---------------------------------------------------------------------------------------
@dataclass
class Row(_Row):
    """A row whose `other` is Huey; ms and % rows are better lower."""

    higher_is_better: bool = True


def connect(db: str, side: str) -> Any:
    """A reader connection through the side's own SQLite library: apsw for jobrun, the
    stdlib's for Huey. Two SQLite copies on one file in one process break each other's
    POSIX locks (a close in one drops the other's), which ends in SIGBUS on the -shm map."""
    if side == "jobrun":
        return open_apsw(db)
    return sqlite3.connect(db, timeout=30)


def wait_count(db: str, side: str, sql: str, params: tuple[Any, ...], n: int, timeout: float,
               interval: float = 0.02) -> tuple[float, int]:
    """Poll `sql` (a count) from a separate connection until it reaches n: (wall time, count)."""
    conn = connect(db, side)
    try:
        return poll_count(conn, sql, params, n, timeout, interval=interval)
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------
# Stores of queued no-op jobs, copied for each run
# ---------------------------------------------------------------------------------------
JOBRUN_DONE = "SELECT count(*) FROM jobs WHERE state = 'succeeded'"
HUEY_DONE = "SELECT count(*) FROM kv WHERE queue = ?"


def jobrun_template(tmp: str, n: int, folder: str = "e2e-template",
                    settings: Any = None) -> str:
    """A store holding n queued no-op jobs, copied for each run (`settings` None: defaults)."""
    import jobrun

    path = os.path.join(tmp, folder, "jobs.db")
    app = jobrun.App(path, settings=settings)
    noop, _ = jobrun_tasks(app)
    app.enqueue_many([noop.call(i) for i in range(n)])
    app.store.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    app.close()
    return path


def huey_template(tmp: str, n: int, folder: str = "e2e-huey-template",
                  task: str = "noop") -> str:
    """Huey's store holding n jobs of `task` (bench_none: returns None, no result stored)."""
    os.makedirs(os.path.join(tmp, folder))
    path = os.path.join(tmp, folder, "huey.db")
    huey, noop, _ = make_huey(path, fsync=False)  # faster to build; the file is the same
    enqueue = noop if task == "noop" else getattr(huey, task)
    for i in range(n):
        enqueue(i)
    huey.storage.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    huey.storage.close()
    return path


def fresh_copy(template: str, folder: str) -> str:
    os.makedirs(folder)
    dest = os.path.join(folder, os.path.basename(template))
    shutil.copyfile(template, dest)
    return dest


def jobrun_states(db: str) -> dict[str, int]:
    conn = connect(db, "jobrun")
    try:
        return job_states(conn)
    finally:
        conn.close()
