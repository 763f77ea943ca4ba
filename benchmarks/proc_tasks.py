"""Tasks for bench_process.py, in a module that everyone imports by name: the jobrun service
(config `import = ["proc_tasks"]`), its process-executor children (forkserver preload), and
the workers of the bare `ProcessPoolExecutor` (pickle sends functions by reference).

The jobrun tasks and the bare-pool calls run the very same functions.
"""

from __future__ import annotations

import os
import time

import jobrun

QUEUE = "cpu"  # the bench config makes it a process queue

app = jobrun.App()  # registration only: the bench enqueues through an App of its own


def noop(i: int = 0) -> None:
    """The measured job: does nothing, returns None (recorded as the result null)."""


def pid_after(seconds: float = 0.0) -> int:
    """Warm-up: busy for `seconds`, so that a batch of C of them needs C distinct workers."""
    if seconds:
        time.sleep(seconds)
    return os.getpid()


noop_task = app.task(name="bench_proc:noop", queue=QUEUE)(noop)
pid_task = app.task(name="bench_proc:pid", queue=QUEUE)(pid_after)
