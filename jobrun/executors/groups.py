"""Stopping everything an attempt started: its process group, and orphans it left.

A command leads its own process group, and so does a process-queue child. A timeout or a
cancel stops the whole group (`stop_group`: SIGTERM, then SIGKILL after a grace); so does a
command's end, for what it left running in the background. A process-queue child serves
many jobs and cannot kill its own group after each: it is a subreaper instead (Linux), so
the orphans of its jobs are reparented to it, and after each job it stops whatever
children it has (`kill_children`; one `waitpid` finds that it has none, the common case).

On Linux a zombie (dead, not yet reaped by a parent that may never do it) counts as gone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable

from .. import clock

LEFTOVER_GRACE = 1.0  # what a finished job left gets this long between SIGTERM and SIGKILL
PR_SET_CHILD_SUBREAPER = 36
_PROC = os.path.isdir("/proc/self/task")


def _stat(pid: int | str) -> list[bytes] | None:
    """Fields of /proc/PID/stat after the command name: state, ppid, pgrp, ..."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def members(pgid: int) -> list[int]:
    """The live (not zombie) processes of group `pgid`."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(name)
            if st is not None and int(st[2]) == pgid and st[0] not in (b"Z", b"X"):
                found.append(int(name))
    return found


def alive(pgid: int) -> bool:
    """Whether any process of group `pgid` still runs."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return bool(members(pgid)) if _PROC else True


def _running(pid: int) -> bool:
    if _PROC:
        st = _stat(pid)
        return st is not None and st[0] not in (b"Z", b"X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _signal(pgid: int, sig: int, leader: int | None) -> bool:
    """Signal the group; or `leader` alone if it leads no group (yet). False: no one left."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        if leader is None:
            return False
    try:
        os.kill(leader, sig)
        return True
    except ProcessLookupError:
        return False


def stop_group(pgid: int, grace: float, *, leader: int | None = None,
               reap: Callable[[], object] | None = None) -> bool:
    """SIGTERM to group `pgid`, SIGKILL to what is left after `grace`; True once nothing of
    it runs. `leader` is signalled alone if it does not lead its group yet (a child stopped
    before its `setsid`); `reap` is called while waiting, so that a parent's dead child is
    reaped. A group's id stays reserved while any member lives, so no unrelated group can
    take the number meanwhile."""
    if pgid <= 1:
        raise ValueError(f"no process group {pgid}: killpg would hit this process's own")
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not _signal(pgid, sig, leader):
            return True
        deadline = clock.monotonic() + wait
        pause = 0.002
        while True:
            if reap is not None:
                reap()
            if not alive(pgid) and (leader is None or not _running(leader)):
                return True
            if clock.monotonic() >= deadline:
                break
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
    return False


# -- the process-queue child's side -------------------------------------------------------
def become_subreaper() -> bool:
    """Orphaned descendants of this process are reparented to it, not to init (Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def has_children() -> bool:
    """Reaps the children that have exited; whether any is left. One syscall when none."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def children() -> list[int]:
    """This process's children (of all its threads)."""
    pids: set[int] = set()
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children", "rb") as f:
                pids.update(int(p) for p in f.read().split())
    except FileNotFoundError:  # a kernel without CONFIG_PROC_CHILDREN: scan every process
        me = os.getpid()
        for name in os.listdir("/proc"):
            st = _stat(name) if name.isdigit() else None
            if st is not None and int(st[1]) == me:
                pids.add(int(name))
    return sorted(pids)


def kill_children(grace: float = LEFTOVER_GRACE) -> int:
    """SIGTERM every child of this process, SIGKILL after `grace`; again for the orphans
    they leave (reparented here, a subreaper), until none is left. Returns how many were
    signalled: 0 at the cost of one `waitpid` when there were none."""
    if not has_children():
        return 0
    if not _PROC:
        return 0  # cannot list them
    termed: set[int] = set()
    start = clock.monotonic()
    pause = 0.002
    while has_children():
        late = clock.monotonic() - start >= grace
        for pid in children():
            if late or pid not in termed:
                try:
                    os.kill(pid, signal.SIGKILL if late else signal.SIGTERM)
                except ProcessLookupError:
                    pass
                termed.add(pid)
        if clock.monotonic() - start > grace + 10.0:
            break  # stuck in the kernel (D state): give up rather than hang the worker
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    return len(termed)
