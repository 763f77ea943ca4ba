"""Which executor runs a claim, and the executors themselves, created on first use.

`async def` tasks go to the service's asyncio loop, TOML command tasks to the command
runner, tasks on a `process` queue (or with `executor="process"`) to that queue's child
processes, everything else to the queue's threads. The service's per-queue cap bounds them
all together.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..config import QueueConfig, Settings
from ..context import Context
from ..model import Claim
from ..registry import Registry, TaskSpec
from . import Began, Done, Executor, never_began
from .slots import Slots
from .thread import ThreadExecutor

if TYPE_CHECKING:  # imported when first made: an idle service loads no asyncio, no multiprocessing
    from .aio import AsyncExecutor
    from .command import CommandExecutor
    from .process import ProcessExecutor


def register_commands(settings: Settings, registry: Registry) -> None:
    """TOML command tasks, and cron entries with `command = [...]`, become tasks."""
    for t in settings.tasks.values():
        registry.add(TaskSpec(t.name, None, queue=t.queue, max_attempts=t.max_attempts,
                              timeout=t.timeout, command=list(t.command),
                              extra={"env": t.env, "cwd": t.cwd, "shell": t.shell}))
    for c in settings.cron:
        if c.command:
            registry.add(TaskSpec(f"cron:{c.name}", None, queue=c.queue,
                                  command=list(c.command)))


def task_modules(registry: Registry, settings: Settings) -> list[str]:
    """Modules a child process imports to find the same tasks as this process."""
    mods = list(settings.imports)
    for name in registry.names():
        spec = registry.find(name)
        if spec is not None and spec.fn is not None:
            mod = getattr(spec.fn, "__module__", None)
            if mod and mod != "__main__" and mod not in mods:
                mods.append(mod)
    return mods


def batch_size(q: QueueConfig) -> int:
    """Jobs sent to a child at once (one pipe round for them all): a slot's share of what
    the queue holds ahead. None waits behind a long job while a child is free: the child's
    jobs not started yet are taken back for it (process.py)."""
    return 1 + q.ahead // max(1, q.concurrency)


class Pools:
    def __init__(self, registry: Registry, done: Done, settings: Callable[[], Settings],
                 store_path: str = "", began: Began = never_began,
                 began_path: str | None = None) -> None:
        self._store_path = store_path
        self._registry = registry
        self._done = done
        self._began = began
        self._began_path = began_path  # children log the held jobs they begin there
        self._kinds: dict[tuple[str, str], str] = {}  # (task, queue) -> kind, per settings
        self._kinds_of: Settings | None = None
        self._settings = settings
        self._lock = threading.Lock()
        self._threads: dict[str, ThreadExecutor] = {}
        self._procs: dict[str, ProcessExecutor] = {}
        self._cmds: dict[str, CommandExecutor] = {}
        self._aio: AsyncExecutor | None = None

    def kind(self, claim: Claim) -> str:
        settings = self._settings()
        if settings is not self._kinds_of:  # a reload: tasks and queues may have changed
            self._kinds, self._kinds_of = {}, settings
        kind = self._kinds.get((claim.task, claim.queue))
        if kind is None:
            kind = self._kind(claim, settings)
            if kind:
                self._kinds[(claim.task, claim.queue)] = kind
        return kind or "thread"  # an unknown task goes dead with UnknownTask, at once

    def _kind(self, claim: Claim, settings: Settings) -> str:
        spec = self._registry.find(claim.task)
        if spec is None:
            return ""
        if spec.command:
            return "command"
        if spec.fn is not None and inspect.iscoroutinefunction(spec.fn):
            return "async"
        q = settings.queue(claim.queue)
        if spec.extra.get("executor", q.executor) == "process":
            return "process"
        return "thread"

    def submit(self, claim: Claim, ctx: Context, kind: str) -> None:
        # A queue's thread executor, once made, stays: no lock on the path of every job.
        ex = self._threads.get(claim.queue) if kind == "thread" else None
        (ex or self.executor(claim.queue, kind)).submit(claim, ctx)

    def executor(self, queue: str, kind: str) -> Executor:
        with self._lock:
            q = self._settings().queue(queue)
            if kind == "async":
                if self._aio is None:
                    from .aio import AsyncExecutor

                    self._aio = AsyncExecutor(
                        self._registry, self._done, self._began,
                        lambda queue: self._settings().queue(queue).concurrency)
                return self._aio
            if kind == "process":
                if queue not in self._procs:
                    from .process import ProcessExecutor

                    self._procs[queue] = ProcessExecutor(
                        queue, q.concurrency, self._registry, self._done,
                        imports=task_modules(self._registry, self._settings()),
                        max_tasks_per_child=q.extra.get("max_tasks_per_child"),
                        store_path=self._store_path,
                        batch=batch_size(q), began=self._began,
                        began_path=self._began_path)
                return self._procs[queue]
            if kind == "command":
                if queue not in self._cmds:
                    from .command import CommandExecutor

                    self._cmds[queue] = CommandExecutor(queue, q.concurrency, self._registry,
                                                        self._done, self._began)
                return self._cmds[queue]
            if queue not in self._threads:
                self._threads[queue] = ThreadExecutor(queue, q.concurrency, self._registry,
                                                      self._done, self._began)
            return self._threads[queue]

    def resize(self, caps: dict[str, int]) -> None:
        """Executors follow the config just applied: their queue's concurrency (a prefetch
        adds no children), and process children the task modules (a reload may add some:
        children started before it are replaced)."""
        with self._lock:
            settings = self._settings()
            for pools in (self._threads, self._procs, self._cmds):
                for q, ex in pools.items():
                    if q in caps:
                        ex.resize(settings.queue(q).concurrency)
            procs = list(self._procs.values())
            mods = task_modules(self._registry, settings) if procs else []
        for proc in procs:
            proc.set_imports(mods)

    def withdraw(self) -> None:
        """A drain: held jobs waiting in executors' queues go back at once."""
        with self._lock:
            slots: list[Slots] = [*self._threads.values(), *self._procs.values(),
                                  *self._cmds.values()]
        for ex in slots:
            ex.withdraw()

    def cancel(self, job_id: int) -> None:
        if self._aio is not None:
            self._aio.cancel(job_id)

    def process_children(self) -> dict[str, list[int]]:
        return {q: ex.children() for q, ex in self._procs.items()}

    def shutdown(self) -> None:
        with self._lock:
            executors: list[Executor] = [*self._threads.values(), *self._procs.values(),
                                         *self._cmds.values()]
            for ex in executors:
                ex.shutdown()
            if self._aio is not None:
                self._aio.shutdown()
