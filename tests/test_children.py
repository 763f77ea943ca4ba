"""Nothing a process-queue job or a command job started outlives the job, whatever its
outcome: a background `sleep` (in the job's process group or a session of its own), a
double-forked daemon, a process that ignores SIGTERM. The task writes the pid it left to a
`*-pids` file; the test waits for the job to end, then for that pid to be gone.

Also: the process queue's child itself survives the clean-up (it serves the next job), and
a job that leaves nothing behind pays no more than one `waitpid` for the check.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobrun
from crashapp.harness import proc_state, wait_for
from execapp import children  # noqa: F401  (registers its tasks in this process's service)
from jobrun.executors import groups
from support.config import write_config as _write_config

GONE_WITHIN = 5.0  # seconds from the job's end to its leftovers being gone


def alive(pid: int) -> bool:
    """Exists and is not a zombie (dead, waiting for a parent that may never reap it)."""
    try:
        return proc_state(pid) not in ("Z", "X")
    except FileNotFoundError:
        return False


def write_config(folder: Path) -> str:
    bg = 'sleep 300 & echo $! > "$0.tmp"; mv "$0.tmp" "$0"'
    quiet = 'sleep 300 >/dev/null 2>&1 & echo $! > "$0.tmp"; mv "$0.tmp" "$0"'
    return _write_config(folder, imports=["execapp.children"], shutdown_timeout=5, body=f"""\
[queues.leftovers]
executor = "process"
concurrency = 1
max_attempts = 1

[queues.cmdq]
concurrency = 2

[tasks.bg_ok]
command = ["/bin/sh", "-c", {json.dumps(bg)}]
queue = "cmdq"

[tasks.bg_quiet]
command = ["/bin/sh", "-c", {json.dumps(quiet)}]
queue = "cmdq"

[tasks.bg_fail]
command = ["/bin/sh", "-c", {json.dumps(bg + "; exit 3")}]
queue = "cmdq"
max_attempts = 1

[tasks.closes_output]
command = ["/bin/sh", "-c", "exec >/dev/null 2>&1; sleep 30"]
queue = "cmdq"
timeout = 1
max_attempts = 1

[tasks.bg_shell]
command = ["sleep 300 &", "echo $! >"]
shell = true
queue = "cmdq"
""")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[jobrun.App]:
    """A service in this process on the test's config; every pid its jobs left is killed
    afterwards, whatever happened."""
    a = jobrun.App.from_config(write_config(tmp_path))
    a.start()
    try:
        yield a
    finally:
        a.stop(timeout=10)
        a.close()
        for f in tmp_path.glob("*-pids"):
            for pid in (int(p) for p in f.read_text().split()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def finished(app: jobrun.App, job_id: int) -> str:
    def state() -> str | None:
        s = app.job(job_id).state.value
        return s if s in ("succeeded", "dead", "retrying") else None
    return str(wait_for(state, 30, f"job {job_id} to finish"))


def left_pid(path: Path) -> int:
    wait_for(path.exists, 5, f"{path.name}")
    (pid,) = [int(p) for p in path.read_text().split()]
    return pid


@pytest.mark.parametrize("how", ["group", "session", "daemon", "stubborn"])
def test_process_job_leftovers_are_gone_after_it_succeeds(tmp_path: Path, app: jobrun.App,
                                                          how: str) -> None:
    # Given: a process-queue job that leaves a process behind and returns.
    folder = str(tmp_path)
    if how == "daemon":
        job = app.enqueue("execapp.children:leave_daemon", args=[folder, how])
    elif how == "stubborn":
        job = app.enqueue("execapp.children:leave_stubborn", args=[folder, how])
    else:
        job = app.enqueue("execapp.children:leave_sleep", args=[folder, how, how == "session"])
    # When: it succeeds.
    assert finished(app, job.id) == "succeeded"
    worker = job.result(timeout=5)
    pid = left_pid(tmp_path / f"{how}-pids")
    ended = time.monotonic()
    # Then: what it left is gone shortly after, and the worker process lives on.
    wait_for(lambda: not alive(pid), GONE_WITHIN, f"the {how} leftover (pid {pid}) to be gone")
    print(f"{how}: leftover gone {time.monotonic() - ended:.2f}s after the job's end")
    nxt = app.enqueue("execapp.children:child_pid")
    assert nxt.result(timeout=10) == worker, "the worker process was replaced"


def test_process_job_leftovers_are_gone_after_it_fails(tmp_path: Path, app: jobrun.App) -> None:
    job = app.enqueue("execapp.children:leave_and_fail", args=[str(tmp_path), "failing"])
    assert finished(app, job.id) == "dead"  # max_attempts = 1
    pid = left_pid(tmp_path / "failing-pids")
    wait_for(lambda: not alive(pid), GONE_WITHIN, "the leftover to be gone")


@pytest.mark.parametrize("task,outcome", [("bg_ok", "succeeded"), ("bg_quiet", "succeeded"),
                                          ("bg_fail", "dead")])
def test_command_job_leftovers_are_gone_after_it_ends(tmp_path: Path, app: jobrun.App,
                                                      task: str, outcome: str) -> None:
    pidfile = tmp_path / f"{task}-pids"
    started = time.monotonic()
    job = app.enqueue(task, args=[str(pidfile)])
    assert finished(app, job.id) == outcome
    took = time.monotonic() - started
    pid = left_pid(pidfile)
    wait_for(lambda: not alive(pid), GONE_WITHIN, f"the command's leftover (pid {pid})")
    print(f"{task}: job took {took:.2f}s")


def test_shell_command_leftovers_are_gone(tmp_path: Path, app: jobrun.App) -> None:
    pidfile = tmp_path / "bg_shell-pids"
    job = app.enqueue("bg_shell", args=[str(pidfile)])
    assert finished(app, job.id) == "succeeded"
    pid = left_pid(pidfile)
    wait_for(lambda: not alive(pid), GONE_WITHIN, "the shell command's leftover")


def test_command_that_closes_its_output_still_times_out(app: jobrun.App) -> None:
    """It closes its output long before it exits: the wait for its exit minds the timeout.
    (Where setpriv is missing, no guard shell holds the pipes: they close first.)"""
    started = time.monotonic()
    job = app.enqueue("closes_output")
    assert finished(app, job.id) == "dead"
    took = time.monotonic() - started
    r = app.store.get(job.id)
    assert r is not None and r.errors[0]["type"] == "TaskTimeout", r.errors
    assert took < 10, f"took {took:.1f}s for a 1 s timeout"


# -- the helpers themselves -----------------------------------------------------------------
def test_stop_group_stops_every_member_and_ignores_zombies() -> None:
    import subprocess

    leader = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 300 & sleep 300 & wait"],
                              start_new_session=True)
    try:
        wait_for(lambda: len(groups.members(leader.pid)) == 3, 5, "the group's members")
        started = time.monotonic()
        assert groups.stop_group(leader.pid, 0.3, leader=leader.pid)
        assert time.monotonic() - started < 3
        leader.wait(5)
        assert not groups.alive(leader.pid)
        assert groups.stop_group(leader.pid, 0.3)  # nothing left: at once
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)
        leader.wait(5)


def test_a_process_job_may_use_multiprocessing(app: jobrun.App) -> None:
    """Found by a stranger: a Pool inside a process-queue task died with "daemonic processes
    are not allowed to have children"."""
    job = app.enqueue("execapp.children:uses_a_pool", args=[4])
    assert finished(app, job.id) == "succeeded", app.job(job.id).record.errors
    assert job.result(timeout=5) == [0, 1, 4, 9]
