"""App: registration, enqueue (validated, JSON, one transaction) and the embedded service."""

from __future__ import annotations

import inspect
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, overload

from . import catalog, clock, enqueue, options, validate
from .config import Settings, env_config, load, load_for_producer, resolve_store
from .errors import InvalidJob
from .inline import run_inline
from .job import Job
from .lock import new_holder_id
from .lookup import TaskLookup
from .model import JobState, NewJob
from .presence import presence_for
from .presence.contract import Liveness, Ringer
from .presence.files import FilePresence
from .registry import REGISTRY, task_name
from .serialize import bounded, dumps
from .store import is_postgres, open_store
from .store.contract import Store
from .store.sqlite import enqueue_in
from .store.sqlite_workflows import send_event_in
from .task import Call, Task, TaskOptions
from .workflows import MAX_STEPS, Step, Workflow, body_runner

if TYPE_CHECKING:
    from .service import Service

__all__ = ["App", "Call", "Job", "Task", "TaskOptions"]

P = ParamSpec("P")
R = TypeVar("R")
jlog = logging.getLogger("jobrun.job")
log = logging.getLogger("jobrun")


#: A name or key: printable text that can be stored and logged (validate.text).
_text = validate.text


def _task_options(name: str | None, **given: Any) -> dict[str, Any]:
    """`@app.task` and `@app.workflow`'s options, checked when the decorator runs."""
    if name is not None:
        validate.text(name, "task name", empty=False)
    return options.check_task(given)


class TaskDecorator(Protocol):
    """What `@app.task(...)` with options returns: `async def` tasks' jobs hold the awaited
    value, as `result()` returns it."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


class App:
    """The producer side and, with `start()`, an embedded service.

    The store is `store`, else $JOBRUN_STORE, else `store` in $JOBRUN_CONFIG, else the
    platformdirs user data dir. It is opened on first use."""

    def __init__(self, store: str | os.PathLike[str] | None = None, *,
                 settings: Settings | None = None) -> None:
        if settings is None:
            cfg = env_config()
            known = store is not None or bool(os.environ.get("JOBRUN_STORE"))
            settings = (load_for_producer(cfg, store_known=known)
                        if cfg and os.path.exists(cfg) else Settings())
        self.settings = settings
        self._store_arg = os.fspath(store) if store is not None else None
        self._store: Store | None = None
        self._ringer: Ringer | None = None
        self._lock = threading.Lock()
        self._service: Service | None = None
        self.inline = False
        self._inline_lock: Liveness | None = None
        self._lookup = TaskLookup(lambda: self.settings, lambda: self.store,
                                  lambda: self.store_path, lambda: self.inline,
                                  self._borrowed_catalog)
        self.tasks: dict[str, Task[Any, Any]] = {}

    @classmethod
    def from_config(cls, path: str | os.PathLike[str]) -> App:
        settings = load(os.fspath(path))
        return cls(settings.store, settings=settings)

    @property
    def store_path(self) -> str:
        return self.store.path if self._store is not None else resolve_store(self._store_arg,
                                                                               self.settings)

    @property
    def store(self) -> Store:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    path = resolve_store(self._store_arg, self.settings)
                    self._store = open_store(path, durability=self.settings.durability,
                                             producer=True)
                    self._ringer = presence_for(self._store).ringer()
        return self._store

    # -- registration ------------------------------------------------------------------
    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(self, fn: None = None, /, *, name: str | None = None, queue: str | None = None,
             priority: int | None = None, max_attempts: int | None = None,
             timeout: float | None = None, retry_base: float | None = None,
             retry_cap: float | None = None, **extra: Any) -> TaskDecorator: ...

    def task(self, fn: Any = None, /, *, name: str | None = None, queue: str | None = None,
             priority: int | None = None, max_attempts: int | None = None,
             timeout: float | None = None, retry_base: float | None = None,
             retry_cap: float | None = None, **extra: Any) -> Any:
        """Register a function as a task (as `@app.task` or `@app.task(queue=...)`).

        Every option is checked here, at import time, not at the first enqueue."""
        opts = _task_options(name, queue=queue, priority=priority, max_attempts=max_attempts,
                             timeout=timeout, retry_base=retry_base, retry_cap=retry_cap,
                             **extra)

        def register(f: Callable[P, R]) -> Task[P, R]:
            spec = options.task_spec(name or task_name(f), f, opts)
            validate.binder(f)  # read its signature once, now
            REGISTRY.add(spec)
            t: Task[P, R] = Task(self, f, spec)
            self.tasks[spec.name] = t
            return t
        if fn is not None:
            return register(fn)
        return register

    # -- enqueue -------------------------------------------------------------------------
    def _defaults(self, task: str, queue: str | None, allow_unknown: bool = False,
                  connection: Any = None) -> catalog.TaskDefaults:
        return self._lookup.defaults(task, queue, allow_unknown, connection)

    def _borrowed_catalog(self, connection: Any) -> bool:
        """Inside the caller's transaction, on a SQLite store not opened here: read the
        catalog through their connection (one of ours would wait on their write lock)."""
        return connection is not None and self._store is None and not self._on_postgres()

    def _new_job(self, task: str, args: Any, kwargs: Any, opts: dict[str, Any], now: float,
                 d: catalog.TaskDefaults, trace_id: str | None = None) -> NewJob:
        return enqueue.new_job(task, args, kwargs, opts, now, d, trace_id)

    def enqueue(self, task: str, args: Any = None, kwargs: Any = None, *,
                queue: str | None = None, priority: int | None = None,
                delay: float | None = None, run_at: datetime | None = None,
                key: str | None = None, max_attempts: int | None = None,
                connection: Any = None, trace_id: str | None = None,
                allow_unknown: bool = False) -> Job[Any]:
        """Store one job (one transaction, or inside `connection`'s open transaction).

        A name no service on the store declares raises UnknownTask (naming the closest
        known ones) unless `allow_unknown`; with no service ever, it is stored (a warning)."""
        opts = {"priority": priority, "delay": delay, "run_at": run_at, "key": key,
                "max_attempts": max_attempts, "trace_id": trace_id}
        now = clock.now()
        new = self._new_job(task, args, kwargs, opts, now,
                            self._defaults(task, queue, allow_unknown, connection))
        (job_id,) = self._write([new], connection, now)
        # With a key it may be an existing job: its state is read when asked.
        job: Job[Any] = Job(self, job_id, None if key is not None else
                            JobState.SCHEDULED if new.scheduled else JobState.QUEUED)
        self._after_enqueue(connection, [job_id], [new])
        if self.inline:
            job.refresh()
        return job

    def enqueue_many(self, calls: list[Call], *, connection: Any = None) -> list[Job[Any]]:
        """Store many jobs in one transaction: all or none."""
        now = clock.now()
        news = []
        defaults: dict[tuple[str, str | None], catalog.TaskDefaults] = {}
        traces = os.urandom(16 * len(calls)).hex()  # one syscall for the batch's trace ids
        for i, c in enumerate(calls):
            if not isinstance(c, Call):
                raise InvalidJob(f"enqueue_many takes task.call(...) items, not {c!r}")
            opts = c.options
            queue = opts.get("queue") if opts else None
            d = defaults.get((c.task, queue))
            if d is None:
                d = defaults[(c.task, queue)] = self._defaults(
                    c.task, queue, bool(opts.get("allow_unknown")) if opts else False,
                    connection)
            news.append(self._new_job(c.task, c.args, c.kwargs, opts, now, d,
                                      traces[32 * i:32 * i + 32]))
        ids = self._write(news, connection, now)
        jobs: list[Job[Any]] = [Job(self, i, None if n.key else
                    (JobState.SCHEDULED if n.scheduled else JobState.QUEUED))
                for i, n in zip(ids, news)]
        self._after_enqueue(connection, ids, news)
        if self.inline:
            for j in jobs:
                j.refresh()
        return jobs

    def _write(self, news: list[NewJob], connection: Any, now: float) -> list[int]:
        from .workflows.run import current_run
        run = current_run()
        if run is not None and connection is None:  # by a workflow body: recorded as a step
            from .workflows.waits import record_enqueue
            return record_enqueue(run, news)
        if connection is None:
            return self.store.enqueue(news, now=now)
        if self._store is not None or self._on_postgres():
            return self.store.enqueue(news, connection=connection, now=now)
        # Not opened here yet, and the caller's transaction may hold the write lock: opening
        # (and migrating) with a connection of ours would wait on it. Work through theirs.
        path = os.path.realpath(resolve_store(self._store_arg, self.settings))
        if self._ringer is None:
            self._ringer = FilePresence(path).ringer()
        return enqueue_in(connection, news, now=now, path=path)

    def _after_enqueue(self, connection: Any, ids: list[int],
                       news: list[NewJob] | None = None) -> None:
        if news and jlog.isEnabledFor(logging.INFO):
            for job_id, n in zip(ids, news):
                jlog.info("job %s %s enqueued%s", job_id, n.task,
                          f" (run_at {clock.iso(n.run_at)})" if n.scheduled else "",
                          extra={"jobrun": {"event": "enqueued", "job_id": job_id,
                                            "task": n.task, "queue": n.queue,
                                            "trace_id": n.trace_id, "key": n.key}})
        if self.inline:
            for i in ids:
                run_inline(self.store, self.inline_holder(), i)
            return
        ringer = self._ringer
        if ringer is None:
            return
        if connection is None:
            ringer.ring()
        else:
            ringer.ring_after(connection)

    def _on_postgres(self) -> bool:
        """A PostgreSQL store opens beside a caller's transaction without waiting on it."""
        return is_postgres(resolve_store(self._store_arg, self.settings))

    def inline_holder(self) -> str:
        """A holder id with a live lock, for jobs run inline in this process: a service on
        the same store must see them as held, not rescue them."""
        if self._inline_lock is None:
            lock = presence_for(self.store).liveness(new_holder_id())
            lock.acquire()
            self._inline_lock = lock
        return self._inline_lock.holder

    # -- workflows -----------------------------------------------------------------------
    @overload
    def workflow(self, fn: Callable[P, R], /) -> Workflow[P, R]: ...
    @overload
    def workflow(self, fn: None = None, /, *, name: str | None = None,
                 queue: str | None = None, priority: int | None = None,
                 max_attempts: int | None = None, timeout: float | None = None,
                 retry_base: float | None = None, retry_cap: float | None = None,
                 max_steps: int = MAX_STEPS, **extra: Any
                 ) -> Callable[[Callable[P, R]], Workflow[P, R]]: ...

    def workflow(self, fn: Any = None, /, *, name: str | None = None, queue: str | None = None,
                 priority: int | None = None, max_attempts: int | None = None,
                 timeout: float | None = None, retry_base: float | None = None,
                 retry_cap: float | None = None, max_steps: int = MAX_STEPS,
                 **extra: Any) -> Any:
        """Register a durable workflow: a task whose body is replayed on every resume, its
        `@app.step` calls answered from their records (see jobrun.workflows)."""
        opts = _task_options(name, queue=queue, priority=priority, max_attempts=max_attempts,
                             timeout=timeout, retry_base=retry_base, retry_cap=retry_cap,
                             **extra)
        if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
            raise InvalidJob(f"max_steps must be a positive int, not {max_steps!r}")

        def register(f: Callable[P, R]) -> Workflow[P, R]:
            if inspect.iscoroutinefunction(f):
                raise InvalidJob(f"{task_name(f)}: a workflow body must be a plain def (it is "
                                 "replayed in a worker thread); make its steps async-free too")
            spec = options.task_spec(name or task_name(f), body_runner(self, f, max_steps),
                                     opts)
            REGISTRY.add(spec)
            w: Workflow[P, R] = Workflow(self, f, spec)
            self.tasks[spec.name] = w
            return w
        if fn is not None:
            return register(fn)
        return register

    @overload
    def step(self, fn: Callable[P, R], /) -> Step[P, R]: ...
    @overload
    def step(self, fn: None = None, /, *, name: str | None = None, max_attempts: int = 1,
             retry_base: float = 1.0, retry_cap: float = 300.0
             ) -> Callable[[Callable[P, R]], Step[P, R]]: ...

    def step(self, fn: Any = None, /, *, name: str | None = None, max_attempts: int = 1,
             retry_base: float = 1.0, retry_cap: float = 300.0) -> Any:
        """A workflow step: recorded once per workflow run, retried up to `max_attempts`
        before the body sees StepFailed; outside a workflow, a plain call."""
        def make(f: Callable[P, R]) -> Step[P, R]:
            return Step(f, name=name, max_attempts=max_attempts, retry_base=retry_base,
                        retry_cap=retry_cap)
        if fn is not None:
            return make(fn)
        Step(lambda: None, max_attempts=max_attempts)  # bad options fail at the decorator
        return make

    def send_event(self, name: str, payload: Any = None, *, connection: Any = None) -> int:
        """Store an event for `jobrun.wait_event(name)` (one transaction, or inside
        `connection`'s open one: a rollback stores nothing). Its id. An event without a
        payload arrives as `True`: `None` is what a wait that timed out returns."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidJob(f"event name must be a non-blank str, not {name!r}")
        _text(name, "event name")
        what = f"payload of event {name}"
        text = bounded(dumps(True if payload is None else payload, what), what)
        now = clock.now()
        if connection is None:
            event_id = self.store.send_event(name, text, now=now)
        elif self._store is not None or self._on_postgres():
            event_id = self.store.send_event(name, text, connection=connection, now=now)
        else:  # as in _write: work through the caller's connection
            path = os.path.realpath(resolve_store(self._store_arg, self.settings))
            if self._ringer is None:
                self._ringer = FilePresence(path).ringer()
            event_id = send_event_in(connection, name, text, now=now, path=path)
        if self.inline or self._ringer is None:
            return event_id
        if connection is None:
            self._ringer.ring()
        else:
            self._ringer.ring_after(connection)
        return event_id

    # -- reading -------------------------------------------------------------------------
    def job(self, job_id: int) -> Job[Any]:
        return Job(self, int(job_id)).refresh()

    # -- the embedded service --------------------------------------------------------------
    def start(self) -> None:
        """Run the service in background threads of this process (its own connections)."""
        from .service import Service

        if self._service is not None:
            return
        self._service = Service(self.store_path, self.settings)
        self._service.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Drain the embedded service: no new claims, wait for in-flight jobs."""
        if self._service is None:
            return
        service, self._service = self._service, None
        service.stop(timeout)

    def close(self) -> None:
        self.stop()
        if self._inline_lock is not None:
            self._inline_lock.release()
            self._inline_lock = None
        if self._store is not None:
            self._store.close()
            self._store = None

