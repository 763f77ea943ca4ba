"""Process executor: a pool of child processes per queue, JSON over pipes (no pickle of jobs).

Children start from a forkserver (safe in a threaded service) that has preloaded the task
modules. Each child leads its own process group, so a timeout or a cancel can stop the job
and anything it started: SIGTERM to the group, SIGKILL after a grace. Each child is also a
subreaper: after every job, whatever the job left running (in the group or not, daemons
included) is stopped before its outcome is sent (see groups.py). A child that dies
mid-job (os._exit, SIGKILL, a segfault) fails only its own job, "worker process died:
signal 11", and is replaced at once. Each slot is a thread of the service that owns one
child at a time. A reload that changes the task modules (`set_imports`) replaces the
children started before it: idle ones at once, busy ones after their current batch.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

from .. import clock
from ..attempt import after_failure
from ..context import Context
from ..errors import TaskTimeout, WorkerDied
from ..model import Claim, Outcome, error_entry
from ..registry import Registry
from . import Began, Done, groups, never_began
from .child import ACK, child_main
from .gate import Gate
from .slots import FRONT, Slots, unstarted

log = logging.getLogger("jobrun.process")
KILL_GRACE = 2.0
GIVE_BACK = 0.005  # s: a job running this long lets the jobs queued behind it go elsewhere
_CLAIM_FIELDS = ("id", "task", "queue", "args", "kwargs", "attempt", "max_attempts", "token",
                 "trace_id", "timeout", "options", "held")


def _eof(child: _Child) -> bool:
    """An idle child's pipe is readable only if it closed: the child died."""
    try:
        return bool(child.conn.poll(0))
    except (EOFError, OSError):
        return True


class _Child:
    def __init__(self, ctx: Any, imports: list[str], path: list[str], store: str,
                 generation: int = 0, began_path: str | None = None) -> None:
        self.generation = generation  # of the executor's task modules it imported
        parent, child = ctx.Pipe()
        self.conn: Connection = parent
        self.gate = Gate()  # the child starts a batch's job, or its slot takes it back
        self.seq = 0                   # of the jobs sent to it
        self.proc = ctx.Process(target=child_main,
                                args=(child, imports, path, store, os.getpid(),
                                      self.gate.path, began_path),
                                daemon=True, name="jobrun-child")
        self.proc.start()
        child.close()
        self.tasks = 0

    @property
    def pid(self) -> int:
        return int(self.proc.pid or 0)

    def kill(self, grace: float = KILL_GRACE) -> None:
        """SIGTERM to the child's whole group, SIGKILL after `grace`."""
        groups.stop_group(self.pid, grace, leader=self.pid, reap=self.proc.is_alive)
        self.close()

    def close(self) -> None:
        self.gate.close()
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
                 kill_grace: float = KILL_GRACE, store_path: str = "", batch: int = 1,
                 began: Began = never_began, began_path: str | None = None) -> None:
        self._store_path = store_path
        self._began_path = began_path
        self._batch = max(1, batch)
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
        self._idle: dict[int, _Child] = {}  # by slot thread, while it waits for work
        self._generation = 0  # bumped when the task modules change
        self._lock = threading.Lock()
        self._hungry = 0  # slots waiting for work: a batch's waiting jobs are theirs
        self._front: deque[tuple[Claim, Context]] = deque()  # claimed for free children
        self.replaced = 0
        super().__init__(name, workers, done, began)

    def children(self) -> list[int]:
        with self._lock:
            return [c.pid for c in self._running.values()]

    def set_imports(self, imports: list[str]) -> None:
        """The task modules changed (a reload): children started before are replaced, the
        idle ones now, the busy ones by their slot after their current batch. A new child
        starts on its slot's next job, as at start-up."""
        imports = list(dict.fromkeys(imports))
        with self._lock:
            if imports == self._imports:
                return
            self._imports = imports
            self._path = [p for p in sys.path if p]
            self._generation += 1
            retired = list(self._idle.values())
            self._idle.clear()  # their slots find no child when they wake
        for child in retired:
            child.kill(self._grace)

    def _wait_work(self, child: _Child | None) -> tuple[list[tuple[Claim, Context]] | None,
                                                        _Child | None]:
        """The next batch, and the child to run it. Meanwhile the child is idle, and
        `set_imports` may retire it; one started before a reload is retired here."""
        me = threading.get_ident()
        stale = None
        with self._lock:
            if child is not None and child.generation != self._generation:
                stale, child = child, None
            elif child is not None:
                self._idle[me] = child
        if stale is not None:
            stale.kill(self._grace)
        size = self._batch
        if self._max_tasks:  # a batch never takes a child past its max_tasks_per_child
            size = max(1, min(size, self._max_tasks - (child.tasks if child else 0)))
        batch = self._take(size)
        if child is None:
            return batch, None
        with self._lock:
            return batch, self._idle.pop(me, None)

    def submit(self, claim: Claim, ctx: Context) -> None:
        """A held claim waits in the queue, to go in a batch; one claimed for a free child
        goes to the front line, which a slot takes first, and never goes behind another job
        in a batch (it would be counted and said started while it waits)."""
        if claim.held:
            self._q.put((claim, ctx))
            return
        with self._lock:
            self._front.append((claim, ctx))
        self._q.put(FRONT)  # wakes a slot waiting for work

    def _first(self) -> tuple[Claim, Context] | None:
        with self._lock:
            return self._front.popleft() if self._front else None

    def _take(self, size: int) -> list[tuple[Claim, Context]] | None:
        """The next batch: one claim (the front line's first, or waiting for one), plus the
        held claims queued, up to the batch size. None when the executor shuts down."""
        batch: list[tuple[Claim, Context]] = []
        while not batch:  # held claims cancelled or handed back while they waited: dropped
            item = self._first()
            if item is None:
                with self._lock:
                    self._hungry += 1
                try:
                    item = self._q.get()
                finally:
                    with self._lock:
                        self._hungry -= 1
                if item is None:
                    return None
                if item is FRONT:  # its claim may be taken already (by a slot looking first)
                    item = self._first()
                    if item is None:
                        continue
                elif (first := self._first()) is not None:  # one came meanwhile: it goes first
                    batch = self._keep([first, item])
                    continue
            batch = self._keep([item])
        while len(batch) < size:
            try:
                more = self._q.get_nowait()
            except queue.Empty:
                break
            if more is None or more is FRONT:
                self._q.put(more)  # a stop marker, or a free child's claim: not this batch
                break
            batch.extend(self._keep([more]))
        return batch

    def _keep(self, items: list[tuple[Claim, Context]]) -> list[tuple[Claim, Context]]:
        return [item for item in items if not self._gone(*item)]

    def _slot(self) -> None:
        child: _Child | None = None
        redo: list[tuple[Claim, Context]] = []
        fresh_failures = 0
        while True:
            batch: list[tuple[Claim, Context]] | None = redo
            redo = []
            if not batch:
                batch, child = self._wait_work(child)
            if batch is None:
                if child is not None:
                    child.kill(0.5)
                return
            if child is not None and (not child.proc.is_alive() or _eof(child)):
                child.close()  # died while idle: these jobs never reached it
                child = None
                self.replaced += 1
            fresh = child is None
            if child is None:
                with self._lock:
                    imports, path, gen = self._imports, self._path, self._generation
                child = _Child(self._mp, imports, path, self._store_path, gen,
                               self._began_path)
            with self._lock:
                for claim, _ in batch:
                    self._running[claim.id] = child
            try:
                results, undelivered, alive = self._run(child, batch)
            finally:
                with self._lock:
                    for claim, _ in batch:
                        self._running.pop(claim.id, None)
            child.tasks += len(results)  # each was handed in as it came (_deliver)
            if undelivered:
                fresh_failures = fresh_failures + 1 if fresh and not results else 0
                if fresh_failures >= 2:  # even a new child cannot take them
                    for claim, _ in undelivered:
                        self._done(claim, after_failure(claim, WorkerDied(
                            "cannot start a worker process"), clock.now()))
                    undelivered, fresh_failures = [], 0
                redo = self._keep(undelivered)  # cancelled meanwhile: never sent again
            if not alive or (self._max_tasks and child.tasks >= self._max_tasks):
                if alive:
                    child.kill(self._grace)
                else:
                    child.close()
                    self.replaced += 1
                child = None  # replaced for the next batch, at once

    def _run(self, child: _Child, batch: list[tuple[Claim, Context]]
             ) -> tuple[list[tuple[Claim, Outcome]], list[tuple[Claim, Context]], bool]:
        """Send a batch and collect its results in order, minding each job's timeout (from
        its own start), cancels, and the child's death. Returns the results, the jobs that
        never started (to send again, uncharged), and whether the child lives on."""
        batch = self._keep(batch)  # held ones cancelled or withdrawn since they were taken
        if not batch:
            return [], [], True
        first = child.seq + 1
        jobs = []
        for c, _ in batch:
            child.seq += 1
            jobs.append({"seq": child.seq, **{f: getattr(c, f) for f in _CLAIM_FIELDS}})
        try:
            child.conn.send_bytes(json.dumps({"jobs": jobs}).encode())
        except OSError:
            return [], batch, False  # the child died while idle: not these jobs' failure
        batch = list(batch)  # taken-back jobs leave it (see _give_back)
        results: list[tuple[Claim, Outcome]] = []
        i = 0
        acked = False
        started = clock.monotonic()
        skipped: set[int] = set()
        marked: set[int] = set()  # held jobs whose start the service was told of

        def began(c: Claim) -> None:
            """The child starts held job `c`, unless told to skip it (then it is told when
            its result shows it ran after all: the skip came too late)."""
            if c.held and c.token not in skipped and c.token not in marked:
                marked.add(c.token)
                self._began(c.token)

        while True:
            claim, ctx = batch[i]
            later = [c.token for c, x in batch[i + 1:]
                     if (x.cancelled or x.withdrawn) and c.token not in skipped]
            if later:  # cancelled, or withdrawn by a drain, before they began: skipped
                skipped.update(later)
                try:
                    child.conn.send_bytes(json.dumps({"skip": later}).encode())
                except OSError:
                    pass
            deadline = started + claim.timeout if claim.timeout else None
            wait = 0.2 if i + 1 == len(batch) else GIVE_BACK  # waiting jobs: look again soon
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - clock.monotonic()))
            try:
                if child.conn.poll(wait):
                    raw = child.conn.recv_bytes()
                    now_m = clock.monotonic()
                    if raw == ACK:
                        acked, started = True, now_m
                        began(claim)  # the child starts the batch with it
                        continue
                    d = json.loads(raw)
                    if d["state"] == "skipped":
                        self._deliver(results, claim, unstarted(claim, ctx))
                    else:
                        if claim.held and claim.token not in marked:  # skipped too late
                            skipped.discard(claim.token)
                            began(claim)
                        self._deliver(results, claim, self._outcome(claim, d, now_m - started))
                    i, started = i + 1, now_m
                    if i == len(batch):
                        return results, [], True
                    began(batch[i][0])  # the child goes on to the next one
                    continue
            except (EOFError, OSError):
                return self._lost(child, batch, results, i, acked)
            if not child.proc.is_alive():  # its pipe may stay open in another process
                try:
                    pending = child.conn.poll(0)
                except (EOFError, OSError):
                    pending = False
                if pending:
                    continue  # read what it sent before dying
                return self._lost(child, batch, results, i, acked)
            if acked and i + 1 < len(batch) and clock.monotonic() - started >= GIVE_BACK:
                self._give_back(child, batch, i, first)
            if ctx.cancelled and acked:
                if ctx.handed_back:  # a drain past its deadline: stop it now, queue it again
                    child.kill(0.0)
                    self._deliver(results, claim, Outcome(claim.id, claim.token, "released"))
                    return results, batch[i + 1:], False
                child.kill(self._grace)
                self._deliver(results, claim, Outcome(
                    claim.id, claim.token, "cancelled", error=error_entry(
                        "Cancelled", "cancelled: child stopped", claim.attempt, clock.now())))
                return results, batch[i + 1:], False
            if deadline is not None and acked and clock.monotonic() >= deadline:
                child.kill(self._grace)
                exc = TaskTimeout(f"timed out after {claim.timeout:g}s: process group stopped")
                self._deliver(results, claim, after_failure(claim, exc, clock.now()))
                return results, batch[i + 1:], False

    def _give_back(self, child: _Child, batch: list[tuple[Claim, Context]], i: int,
                   first: int) -> None:
        """Job i runs long while another slot waits for work with none queued: the jobs
        of this batch after it, not started, go back to the queue for that slot (no job
        waits behind a long one while a child is free)."""
        with self._lock:
            hungry = self._hungry > 0
        if not hungry or not self._q.empty():
            return
        if child.gate.take_back(first + i + 1, first + len(batch) - 1):
            for item in batch[i + 1:]:
                self._q.put(item)
            del batch[i + 1:]

    def _lost(self, child: _Child, batch: list[tuple[Claim, Context]],
              results: list[tuple[Claim, Outcome]], i: int, acked: bool
              ) -> tuple[list[tuple[Claim, Outcome]], list[tuple[Claim, Context]], bool]:
        """The child died: the running job fails with the cause; the rest go again."""
        if not acked:
            return results, batch, False
        claim = batch[i][0]
        self._deliver(results, claim, after_failure(claim, WorkerDied(child.died()),
                                                    clock.now()))
        return results, batch[i + 1:], False

    def _deliver(self, results: list[tuple[Claim, Outcome]], claim: Claim,
                 outcome: Outcome) -> None:
        """An outcome goes to the service as it comes, not after the rest of its batch: a
        job done before a long one in its child is recorded while that one runs."""
        results.append((claim, outcome))
        self._done(claim, outcome)

    @staticmethod
    def _outcome(claim: Claim, d: dict[str, Any], duration: float) -> Outcome:
        return Outcome(claim.id, claim.token, d["state"], result=d["result"], run_at=d["run_at"],
                       error=d["error"], extra={"duration": duration})
