"""The service's locks must not outlive it in the processes its tasks start.

jobrun's liveness and leader locks are flocks on open file descriptions: a forked child
shares them, and while it lives the kernel keeps them held. A task that forks a
long-sleeping child used to keep a SIGKILLed service "alive": the next service never led
the scheduler and never rescued the dead service's job. Each way a task can start a process
is tried with a real `jobrun start`: the service is SIGKILLed while the job runs, a new one
starts, and it must lead (cron fires) and rescue the job within a few seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobrun
from crashapp.harness import Reader, ServiceProc, wait_for, wait_serving
from execapp import children  # noqa: F401  (by-name enqueues get the tasks' own queues)
from jobrun.bell import Bell
from jobrun.lock import FileLock, HolderLock, leader_path, state_dir
from support.config import write_config as _write_config

PY = json.dumps(sys.executable)
TAKEOVER = 5.0  # seconds from the new service serving to its first fire and the rescue

# A command task whose first attempt leaves `sleep` running in a session of its own (out of
# reach of the command's process group) and hangs; a later attempt exits 0 at once.
BG_CMD = ("import os, subprocess, sys, time\n"
          "if int(os.environ['JOBRUN_ATTEMPT']) > 1: sys.exit(0)\n"
          "p = subprocess.Popen(['sleep', '40'], start_new_session=True, close_fds=False)\n"
          "open(sys.argv[1] + '.tmp', 'w').write(str(p.pid))\n"
          "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
          "time.sleep(60)\n")


def write_config(folder: Path) -> str:
    return _write_config(folder, imports=["execapp.children"], shutdown_timeout=5, body=f"""\
[queues.forks]
concurrency = 2

[queues.forkproc]
executor = "process"
concurrency = 1

[tasks.bg_cmd]
command = [{PY}, "-c", {json.dumps(BG_CMD)}]
queue = "forks"
max_attempts = 3

[[cron]]
name = "beat"
every = "1s"
task = "execapp.children:beat"
""")


def alive(pid: int) -> bool:
    """Exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):  # gone before, or while, it was read
        return False


def lock_fds(pid: int, store: str) -> list[str]:
    """The files under the store's state folder (`<store>.jobrun/`) that `pid` has open."""
    where = os.path.realpath(state_dir(store))
    found = []
    with contextlib.suppress(FileNotFoundError, PermissionError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith(where):
                    found.append(target)
    return found


def sockets_named(pid: int, needle: str) -> list[str]:
    """Abstract unix sockets (the doorbell's) bound by sockets `pid` has open."""
    inodes = set()
    with contextlib.suppress(FileNotFoundError, PermissionError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    with open("/proc/net/unix", encoding="ascii", errors="replace") as f:
        return [ln for ln in f if ln.split()[6:7] and ln.split()[6] in inodes and needle in ln]


@pytest.fixture
def leftovers(tmp_path: Path) -> Iterator[list[int]]:
    """Pids to SIGKILL after the test, with every pid a task wrote to a `*-pids` file."""
    pids: list[int] = []
    yield pids
    for f in tmp_path.glob("*-pids"):
        pids.extend(int(p) for p in f.read_text().split())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def fires_after(db: Reader, wall: float) -> int:
    return int(db.one("SELECT count(*) FROM cron_fires c JOIN jobs j ON j.id = c.job_id "
                      "WHERE c.entry = 'beat' AND j.enqueued_at > ?", (wall,)))


CASES = {
    "os_fork": ("execapp.children:os_fork", []),
    "mp_fork": ("execapp.children:mp_fork", []),
    "popen_close_fds": ("execapp.children:popen", [True]),
    "popen_keep_fds": ("execapp.children:popen", [False]),
    "command": ("bg_cmd", None),
    "process_queue_fork": ("execapp.children:proc_fork", []),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_a_process_started_by_a_task_does_not_keep_a_killed_service_alive(
        tmp_path: Path, case: str, leftovers: list[int]) -> None:
    cfg = write_config(tmp_path)
    store = str(tmp_path / "jobs.db")
    task, extra = CASES[case]
    pidfile = tmp_path / ("bg_cmd-pids" if extra is None else f"{task.split(':')[1]}-pids")
    args = [str(pidfile)] if extra is None else [str(tmp_path), *extra]
    procs: list[ServiceProc] = []
    db: Reader | None = None
    try:
        # Given: a service that leads the scheduler, running a job that started a process.
        first = ServiceProc(cfg, tmp_path / "first.log")
        procs.append(first)
        wait_serving(store, first)
        wait_for(lambda: "now leads the scheduler" in first.log_text(), 10, "the first leader")
        app = jobrun.App.from_config(cfg)
        job = app.enqueue(task, args=args)
        wait_for(pidfile.exists, 15, "the task's process to start")
        (left,) = [int(p) for p in pidfile.read_text().split()]
        assert alive(left)
        # The child drops its copies in its at-fork handler, which runs when the child is
        # first scheduled: on a loaded machine that can be after the parent wrote the pid.
        wait_for(lambda: lock_fds(left, store) == [], 5,
                 "the task's process to let go of the service's lock files")

        # When: the service is SIGKILLed (its process lives on) and a new one starts.
        first.send(signal.SIGKILL)
        first.proc.wait(10)
        killed = time.time()
        if case == "process_queue_fork":
            # The child (a subreaper) stops its descendants, in its group or not, when the
            # service dies: nothing of the attempt runs on beside its rescue.
            wait_for(lambda: not alive(left), 5, "the process child's grandchild to stop")
        else:  # out of jobrun's reach: it runs on, without the service's locks
            assert alive(left), "the left-behind process should outlive the service"
        second = ServiceProc(cfg, tmp_path / "second.log")
        procs.append(second)
        wait_serving(store, second)
        serving = time.monotonic()

        # Then: the new service leads (cron fires again) and rescues the job, at once.
        db = Reader(store)
        wait_for(lambda: fires_after(db, killed) > 0, TAKEOVER,
                 f"a cron fire by the new service ({case}); log:\n{second.log_text()[-2000:]}")
        led = time.monotonic() - serving
        wait_for(lambda: app.job(job.id).state.value == "succeeded", TAKEOVER,
                 f"the dead service's job to be rescued and run again ({case})")
        rescued = time.monotonic() - serving
        r = app.store.get(job.id)
        assert r is not None and r.attempts == 2, r
        assert r.queue == ("forkproc" if case == "process_queue_fork" else "forks"), r.queue
        assert "worker lost" in r.errors[0]["message"], r.errors
        print(f"{case}: new service led in {led:.2f}s, rescued the job in {rescued:.2f}s")
        app.close()
    finally:
        if db is not None:
            db.close()
        for p in procs:
            p.kill()


def test_a_forked_child_closes_every_lock_and_the_parent_keeps_them(tmp_path: Path) -> None:
    """In-process: after `os.fork()` the child has no descriptor of a holder lock, the leader
    lock or the doorbell, while the parent still holds both locks (the child cannot take
    them with fresh descriptors either)."""
    store = str(tmp_path / "jobs.db")
    holder = HolderLock(store, "me-1")
    leader = FileLock(leader_path(store))
    assert holder.acquire() and leader.acquire()
    bell = Bell(store, "me-1")
    r, w = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:  # the child: report, then leave without running any cleanup
            code = 1
            try:
                report = {"fds": lock_fds(os.getpid(), store),
                          "bell": len(sockets_named(os.getpid(), "me-1")),
                          "held": [holder.held, leader.held],
                          "can_take": [FileLock(holder.path).acquire(),
                                       FileLock(leader.path).acquire()]}
                os.write(w, json.dumps(report).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        out = b""
        while chunk := os.read(r, 65536):
            out += chunk
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        report = json.loads(out)
        assert report == {"fds": [], "bell": 0, "held": [False, False],
                          "can_take": [False, False]}, report
        # The parent's locks survived the child's closing its copies.
        assert holder.held and leader.held
        assert not FileLock(holder.path).acquire() and not FileLock(leader.path).acquire()
        assert len(lock_fds(os.getpid(), store)) == 2
        assert len(sockets_named(os.getpid(), "me-1")) == 1
    finally:
        os.close(r)
        bell.close()
        holder.release(unlink=True)
        leader.release()
