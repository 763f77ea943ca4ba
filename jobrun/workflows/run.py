"""One run of a workflow body: its recorded steps, the call counter, and the fence.

A body runs again from the top whenever its job runs (after a wait, a crash, a retry). Each
recorded call (a step, a sleep, a wait, a gather, an enqueue) takes the next number; the
record at that number, if there is one, answers it without running, provided it names the
same step (else NonDeterministic: the code changed under a workflow in flight). Every record
is written while the attempt still holds its job; quick steps' successes are committed in
groups (GROUP_WORK), a step's with its last `jobrun.once` block (see once.StepScope).
"""

from __future__ import annotations

import collections
import contextvars
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import catalog, clock, enqueue
from ..attempt import Suspend
from ..context import Context, current
from ..errors import Interrupted, NonDeterministic, NotInWorkflow, Permanent
from ..location import canonical
from ..model import NewJob
from ..presence import presence_for
from ..presence.contract import Ringer
from ..registry import REGISTRY
from ..store.contract import StepRecord, Store

if TYPE_CHECKING:
    from ..app import App
    from ..once import StepScope

#: The default cap on recorded calls per workflow run.
MAX_STEPS = 10_000
#: A wait without a timeout: due "never" (year 9999), woken by what it waits for.
FOREVER = clock.NEVER
#: Quick steps' successes are committed together, once the steps waiting took this many
#: seconds in all (or at the body's next wait, child start, enqueue or end): a crash runs
#: at most this much finished step work again, as a job finished but not yet in a round.
GROUP_WORK = 0.02

__all__ = ["FOREVER", "MAX_STEPS", "Fenced", "Suspend", "WorkflowRun", "current_run",
           "require_run", "run_body"]


class Fenced(BaseException):
    """The attempt no longer holds its workflow job (cancelled, or taken back): stop the body
    now; nothing more of it is recorded."""


class WorkflowRun:
    """The body's view of its job while it runs."""

    def __init__(self, app: App, store: Store, job_id: int, token: int, task: str, *,
                 inline: bool, max_steps: int, ctx: Context | None = None) -> None:
        self.app, self.store, self.ctx = app, store, ctx
        self.job_id, self.token, self.task = job_id, token, task
        self.inline = inline
        self.max_steps = max_steps
        self.recorded = {s.seq: s for s in store.steps(job_id)}
        self.seq = 0
        self._pending: dict[int, StepRecord] = {}  # recorded, not committed yet
        self._work = 0.0  # seconds of step work in _pending (a crash would run it again)

    def next(self, name: str, kind: str) -> tuple[int, StepRecord | None]:
        """The number of this call and its record, if any. A draining service hands the
        workflow back here, at a step boundary; a cancelled one stops here."""
        if self.ctx is not None and self.ctx.cancelled:
            if self.ctx.stopping:
                raise Interrupted()
            raise Fenced(f"job {self.job_id} was cancelled or taken back")
        if kind in ("event", "gather", "enqueue"):
            self.flush()  # these commit on their own, not through record(): steps first
        self.seq += 1
        if self.seq > self.max_steps:
            raise Permanent(f"workflow {self.task} (job {self.job_id}) called more than its "
                            f"maximum of {self.max_steps} steps (raise it with @app.workflow(max_steps=...))")
        rec = self.recorded.get(self.seq)
        if rec is not None and rec.name != name:
            raise NonDeterministic(
                f"workflow {self.task} (job {self.job_id}): call {self.seq} was recorded as "
                f"{rec.name!r} but this run calls {name!r}: the workflow's code changed while "
                "it was in flight (finish or cancel old runs before reordering steps)")
        return self.seq, rec

    def record(self, step: StepRecord, scope: StepScope | None = None) -> None:
        """Record a step. A quick step's success waits to be committed with the next ones
        (GROUP_WORK); any other record commits at once, with those waiting. Fenced: the
        attempt no longer holds its job."""
        self.recorded[step.seq] = step
        self._pending[step.seq] = step
        if step.kind == "step" and step.state == "succeeded":
            self._work += (step.finished or 0.0) - (step.started or 0.0)
            if scope is not None:  # its last once block's transaction takes them all
                held = scope.finish(self.job_id, self.token, list(self._pending.values()))
                if held is not None:
                    self._committed(held)
                    return
            if self._work < GROUP_WORK:
                if not self.store.holds(self.job_id, self.token):  # cancelled: stop here
                    raise Fenced(f"job {self.job_id} is no longer held by this attempt")
                return
        self.flush()

    def flush(self, *, last: bool = False) -> None:
        """Commit the records waiting (before a wait, children, an enqueue, the body's end:
        `last`, the attempt's outcome commit follows and makes them durable with it)."""
        if self._pending:
            self._committed(self.store.record_steps(self.job_id, self.token,
                                                    list(self._pending.values()), last=last))

    def _committed(self, held: bool) -> None:
        steps = list(self._pending.values())
        self._pending.clear()
        self._work = 0.0
        if not held:
            raise Fenced(f"job {self.job_id} is no longer held by this attempt")
        with _COUNT_LOCK:
            for step in steps:
                RECORDED[(step.kind, step.state)] += 1

    def prepare(self, task: str, args: list[Any], kwargs: dict[str, Any], *,
                queue: str | None, priority: int | None, run_at: Any) -> NewJob:
        """A child's row, as an enqueue into this workflow's own store would make it (its
        task's defaults from this process's registry and settings, else that store's
        catalog): never through the store of the App the workflow was declared on."""
        view = _catalog_for(self.store)
        settings = self.app.settings
        d = catalog.resolve(REGISTRY.find(task), settings.tasks.get(task), view.lookup(task),
                            settings, queue)
        return enqueue.new_job(task, args, kwargs, {"priority": priority, "run_at": run_at},
                               clock.now(), d)

    def suspend(self, run_at: float) -> Suspend:
        return Suspend(run_at)

    def ring(self) -> None:
        """Tell services on the store that there is work (children just stored)."""
        _ringer(self.store.path).ring()


#: Step records this process committed, by (kind, state): what metrics count.
RECORDED: collections.Counter[tuple[str, str]] = collections.Counter()
_COUNT_LOCK = threading.Lock()

_RUN: contextvars.ContextVar[WorkflowRun | None] = contextvars.ContextVar(
    "jobrun_workflow", default=None)


def current_run() -> WorkflowRun | None:
    return _RUN.get()


def require_run(what: str) -> WorkflowRun:
    run = _RUN.get()
    if run is None:
        raise NotInWorkflow(f"jobrun.{what}() may be called only in a workflow body "
                           "(an @app.workflow function run as a job)")
    return run


def set_run(run: WorkflowRun | None) -> contextvars.Token[WorkflowRun | None]:
    return _RUN.set(run)


def reset_run(token: contextvars.Token[WorkflowRun | None]) -> None:
    _RUN.reset(token)


_stores: dict[str, Store] = {}
_ringers: dict[str, Ringer] = {}
_lock = threading.Lock()


def store_for(path: str) -> Store:
    """This process's store handle on `path`, for bodies (thread-safe, one per path)."""
    with _lock:
        store = _stores.get(path)
        if store is None:
            from ..store import open_store

            store = _stores[path] = open_store(path)
        return store


_catalogs: dict[str, catalog.CatalogView] = {}


def _catalog_for(store: Store) -> catalog.CatalogView:
    with _lock:
        view = _catalogs.get(store.path)
        if view is None:
            view = _catalogs[store.path] = catalog.CatalogView(store.catalog, store.catalog_born)
        return view


def _ringer(path: str) -> Ringer:
    store = store_for(path)  # before _lock: it takes it too
    with _lock:
        r = _ringers.get(path)
        if r is None:
            r = _ringers[path] = presence_for(store).ringer()
        return r


def run_body(app: App, body: Callable[..., Any], max_steps: int, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
    """Run a workflow body as its job's attempt (the function the service calls)."""
    ctx = current()
    if ctx is None:
        return body(*args, **kwargs)  # called outside any job: a plain call
    path = canonical(ctx.store or os.environ.get("JOBRUN_STORE") or app.store_path)
    store = app.store if app.inline else store_for(path)
    run = WorkflowRun(app, store, ctx.job_id, ctx.token, ctx.task, inline=app.inline,
                      max_steps=max_steps, ctx=ctx)
    token = _RUN.set(run)
    try:
        return body(*args, **kwargs)
    finally:
        _RUN.reset(token)
        run.flush(last=True)  # before the attempt's outcome (a return, a failure, a wait)

