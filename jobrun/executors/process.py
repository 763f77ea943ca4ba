"""Process executor: a pool of child processes per queue, JSON over pipes (no pickle of jobs).

Children start from a forkserver (safe in a threaded service) that has preloaded the task
modules. Each child leads its own process group, so a timeout or a cancel can stop the job
and anything it started: SIGTERM to the group, SIGKILL after a grace. A child that dies
mid-job (os._exit, SIGKILL, a segfault) fails only its own job, "worker process died:
signal 11", and is replaced at once. Each slot is a thread of the service that owns one
child at a time.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from .. import clock
from ..context import Context
from ..errors import TaskTimeout, WorkerDied
from ..model import Claim
from ..registry import Registry
from ..store.base import Outcome
from ..worker import decide, log_outcome
from . import Done
from .slots import Slots

log = logging.getLogger("jobrun.process")
KILL_GRACE = 2.0
ACK = b"A"
_CLAIM_FIELDS = ("id", "task", "queue", "args", "kwargs", "attempt", "max_attempts", "token",
                 "trace_id", "timeout", "options")


def _die_with(service_pid: int) -> None:
    """Kill this child's whole process group when the service dies (even by SIGKILL): its
    job is rescued and run again elsewhere, so nothing of this attempt may go on."""
    import select
    import threading

    def watch() -> None:
        try:
            fd = os.pidfd_open(service_pid)
            select.select([fd], [], [])  # readable once the service has exited
        except (AttributeError, OSError):
            while True:  # no pidfd: poll
                try:
                    os.kill(service_pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.5)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="jobrun-child-watchdog").start()


def _child_main(conn: Connection, imports: list[str], path: list[str], store: str,
                service_pid: int = 0) -> None:
    """The child: its own process group, the task modules, then one job at a time."""
    import importlib

    from ..registry import REGISTRY
    from ..worker import run_attempt

    os.setsid()
    if service_pid:
        _die_with(service_pid)
    if store:
        os.environ["JOBRUN_STORE"] = store  # jobrun.once() and App() in tasks find the store
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the service's to handle
    for p in reversed(path):
        if p not in sys.path:
            sys.path.insert(0, p)
    for name in imports:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the job will go dead with UnknownTask; say why here
            print(f"jobrun child: cannot import {name}: {exc}", file=sys.stderr)
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return
        conn.send_bytes(ACK)  # received: from now on a death is this job's
        d = json.loads(raw)
        claim = Claim(**d)
        o = run_attempt(claim, REGISTRY, log_it=False)
        conn.send_bytes(json.dumps({"state": o.state, "result": o.result, "run_at": o.run_at,
                                    "error": o.error, "extra": o.extra}).encode())


def _eof(child: _Child) -> bool:
    """An idle child's pipe is readable only if it closed: the child died."""
    try:
        return bool(child.conn.poll(0))
    except (EOFError, OSError):
        return True


class _Child:
    def __init__(self, ctx: Any, imports: list[str], path: list[str], store: str) -> None:
        parent, child = ctx.Pipe()
        self.conn: Connection = parent
        self.proc = ctx.Process(target=_child_main,
                                args=(child, imports, path, store, os.getpid()),
                                daemon=True, name="jobrun-child")
        self.proc.start()
        child.close()
        self.tasks = 0

    @property
    def pid(self) -> int:
        return int(self.proc.pid or 0)

    def kill(self, grace: float = KILL_GRACE) -> None:
        """SIGTERM to the child's whole group, SIGKILL after `grace`."""
        pid = self.pid
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
            self.proc.join(wait)
            if not self.proc.is_alive():
                break
        self.close()

    def close(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass
        if self.proc.is_alive():
            self.proc.join(0.05)

    def died(self) -> str:
        self.proc.join(1.0)
        code = self.proc.exitcode
        if code is None:
            return "worker process stopped answering"
        if code < 0:
            return f"worker process died: signal {-code} ({signal.Signals(-code).name})"
        return f"worker process died: exit code {code}"


class ProcessExecutor(Slots):
    """Up to `workers` children for one queue, started on first use."""

    tag = "proc"

    def __init__(self, name: str, workers: int, registry: Registry, done: Done, *,
                 imports: list[str], max_tasks_per_child: int | None = None,
                 kill_grace: float = KILL_GRACE, store_path: str = "") -> None:
        self._store_path = store_path
        self._registry = registry
        self._imports = list(dict.fromkeys(imports))
        self._path = [p for p in sys.path if p]
        self._max_tasks = max_tasks_per_child
        self._grace = kill_grace
        self._mp = multiprocessing.get_context("forkserver")
        try:
            self._mp.set_forkserver_preload(["jobrun.executors.process", *self._imports])
        except Exception:  # pragma: no cover - preload is an optimisation only
            pass
        self._running: dict[int, _Child] = {}
        self._lock = threading.Lock()
        self.replaced = 0
        super().__init__(name, workers, done)

    def children(self) -> list[int]:
        with self._lock:
            return [c.pid for c in self._running.values()]

    def _slot(self) -> None:
        child: _Child | None = None
        while True:
            item = self._q.get()
            if item is None:
                if child is not None:
                    child.kill(0.5)
                return
            claim, ctx = item
            if child is not None and (not child.proc.is_alive() or _eof(child)):
                child.close()  # died while idle: this job never reached it
                child = None
                self.replaced += 1
            if child is None:
                child = _Child(self._mp, self._imports, self._path, self._store_path)
            started = time.perf_counter()
            with self._lock:
                self._running[claim.id] = child
            try:
                outcome, alive = self._run(child, claim, ctx)
                if outcome.state == "undelivered":  # a fresh child, and the job again
                    child.close()
                    self.replaced += 1
                    child = _Child(self._mp, self._imports, self._path, self._store_path)
                    with self._lock:
                        self._running[claim.id] = child
                    outcome, alive = self._run(child, claim, ctx)
                    if outcome.state == "undelivered":
                        outcome = decide(claim, WorkerDied("cannot start a worker process"),
                                         clock.now())
            finally:
                with self._lock:
                    self._running.pop(claim.id, None)
            outcome.extra["duration"] = time.perf_counter() - started
            child.tasks += 1
            if not alive or (self._max_tasks and child.tasks >= self._max_tasks):
                if alive:
                    child.kill(self._grace)
                else:
                    self.replaced += 1
                child = None  # replaced on the next job, at once
            log_outcome(claim, outcome)
            self._done(claim, outcome)

    def _run(self, child: _Child, claim: Claim, ctx: Context) -> tuple[Outcome, bool]:
        """Send one job and wait for its answer, a timeout, a cancel, or the child's death."""
        payload = {f: getattr(claim, f) for f in _CLAIM_FIELDS}
        try:
            child.conn.send_bytes(json.dumps(payload).encode())
        except OSError:
            # Not delivered: the child died while idle. Not this job's failure.
            return Outcome(claim.id, claim.token, "undelivered"), False
        deadline = None if not claim.timeout else clock.monotonic() + claim.timeout
        acked = False
        undelivered = Outcome(claim.id, claim.token, "undelivered")
        while True:
            wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - clock.monotonic()))
            try:
                if child.conn.poll(wait):
                    raw = child.conn.recv_bytes()
                    if raw == ACK:
                        acked = True
                        continue
                    d = json.loads(raw)
                    return Outcome(claim.id, claim.token, d["state"], result=d["result"],
                                   run_at=d["run_at"], error=d["error"], extra=d["extra"]), True
            except (EOFError, OSError):
                if not acked:
                    return undelivered, False
                return decide(claim, WorkerDied(child.died()), clock.now()), False
            if not child.proc.is_alive():  # its pipe may stay open in another process
                try:
                    pending = child.conn.poll(0)
                except (EOFError, OSError):
                    pending = False
                if pending:
                    continue  # read what it sent before dying (the ack, maybe a result)
                if not acked:
                    return undelivered, False
                return decide(claim, WorkerDied(child.died()), clock.now()), False
            if ctx.cancelled:
                child.kill(self._grace)
                return Outcome(claim.id, claim.token, "cancelled",
                               error={"at": clock.now(), "type": "Cancelled", "attempt":
                                      claim.attempt, "message": "cancelled: child stopped"}), False
            if deadline is not None and clock.monotonic() >= deadline:
                child.kill(self._grace)
                exc = TaskTimeout(f"timed out after {claim.timeout:g}s: process group stopped")
                return decide(claim, exc, clock.now()), False
