"""Tasks that leave processes behind them, for test_fork_locks.py and test_children.py.

Each records the pids it started in `<folder>/<name>-pids` (atomically), so the test can
watch them and its teardown can kill what is left. A task that must be running when the
service is SIGKILLed hangs on its first attempt; a later attempt (after the rescue) returns
at once.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import time

import jobrun
from execapp.tasks import touch

app = jobrun.App()
LINGER = 40.0  # how long a left-behind process sleeps: far past every test's deadline


def _hang_unless_rescued() -> str:
    """On the first attempt, wait to be killed with the service; later attempts return."""
    if jobrun.context().attempt > 1:
        return "rescued"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)
    raise RuntimeError("the service was never killed")


@app.task
def beat() -> None:
    """A cron entry's job: its fires show who leads."""


# -- item 5: children of the service must not keep its locks -------------------------------
@app.task(queue="forks", max_attempts=3)
def os_fork(folder: str) -> str:
    """`os.fork()` from a thread task: the child sleeps on in the service's image."""
    if jobrun.context().attempt > 1:
        return "rescued"
    pid = os.fork()
    if pid == 0:
        try:
            time.sleep(LINGER)
        finally:
            os._exit(0)
    touch(os.path.join(folder, "os_fork-pids"), str(pid))
    return _hang_unless_rescued()


@app.task(queue="forks", max_attempts=3)
def mp_fork(folder: str) -> str:
    """A multiprocessing 'fork' context process from a thread task."""
    if jobrun.context().attempt > 1:
        return "rescued"
    p = multiprocessing.get_context("fork").Process(target=time.sleep, args=(LINGER,),
                                                    daemon=False)
    p.start()
    touch(os.path.join(folder, "mp_fork-pids"), str(p.pid))
    return _hang_unless_rescued()


@app.task(queue="forks", max_attempts=3)
def popen(folder: str, close_fds: bool) -> str:
    """`subprocess.Popen(["sleep", ...])` from a thread task, in a session of its own (so
    nothing of the service's stops it), with or without close_fds."""
    if jobrun.context().attempt > 1:
        return "rescued"
    p = subprocess.Popen(["sleep", str(LINGER)], close_fds=close_fds, start_new_session=True)
    touch(os.path.join(folder, "popen-pids"), str(p.pid))
    return _hang_unless_rescued()


@app.task(queue="forkproc", max_attempts=3)
def proc_fork(folder: str) -> str:
    """On a process queue: the forkserver child forks a grandchild that leaves the child's
    process group (its own session), so the child's death watch does not stop it."""
    if jobrun.context().attempt > 1:
        return "rescued"
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            time.sleep(LINGER)
        finally:
            os._exit(0)
    touch(os.path.join(folder, "proc_fork-pids"), str(pid))
    return _hang_unless_rescued()


# -- item 15: nothing a process job started outlives it ------------------------------------
@app.task(queue="leftovers")
def leave_sleep(folder: str, name: str, new_session: bool = False) -> int:
    """Starts `sleep` in the background and returns at once, succeeding."""
    p = subprocess.Popen(["sleep", "300"], start_new_session=new_session)
    touch(os.path.join(folder, f"{name}-pids"), str(p.pid))
    return os.getpid()


@app.task(queue="leftovers")
def leave_daemon(folder: str, name: str) -> int:
    """Double-forks a daemon (its own session, its parent gone at once): the orphan is
    reparented to the nearest subreaper."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setsid()
            grand = os.fork()
            if grand == 0:
                os.close(w)
                time.sleep(300)
                os._exit(0)
            os.write(w, str(grand).encode())
        finally:
            os._exit(0)
    os.close(w)
    grand = int(os.read(r, 64) or b"0")
    os.close(r)
    os.waitpid(pid, 0)
    touch(os.path.join(folder, f"{name}-pids"), str(grand))
    return os.getpid()


@app.task(queue="leftovers")
def leave_stubborn(folder: str, name: str) -> int:
    """Leaves a process that ignores SIGTERM: only a SIGKILL stops it."""
    p = subprocess.Popen(["sh", "-c", "trap '' TERM; while :; do sleep 1; done"])
    touch(os.path.join(folder, f"{name}-pids"), str(p.pid))
    time.sleep(0.2)  # let the shell set its trap
    return os.getpid()


@app.task(queue="leftovers")
def leave_and_fail(folder: str, name: str) -> None:
    """Starts `sleep` in the background, then fails."""
    p = subprocess.Popen(["sleep", "300"])
    touch(os.path.join(folder, f"{name}-pids"), str(p.pid))
    raise ValueError("failed, leaving a sleep behind")


@app.task(queue="leftovers")
def child_pid() -> int:
    return os.getpid()


def _square(x: int) -> int:
    return x * x


@app.task(queue="leftovers")
def uses_a_pool(n: int) -> list[int]:
    """A process-queue task may use multiprocessing itself (its worker is no daemon to it)."""
    with multiprocessing.get_context("fork").Pool(2) as pool:
        return list(pool.map(_square, range(n)))
