"""`@app.step` and `@app.workflow`: recorded calls, and tasks whose body is replayed.

A step called in a body runs once per workflow run: its JSON result (or its final error) is
recorded, and a replay returns the record without running. A failure with attempts left is
retried after the usual backoff, the workflow waiting in the store meanwhile (no slot held,
not an attempt of the workflow); after its attempts it raises StepFailed, on every replay
alike. Outside a workflow body a step is a plain call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from .. import clock
from ..attempt import failure_entry
from ..errors import InvalidJob, NotInWorkflow, Permanent, StepFailed
from ..once import step_scope
from ..retry import DEFAULT_BASE, DEFAULT_CAP, backoff
from ..serialize import dumps, loads
from ..store.contract import StepRecord
from ..task import Task
from .run import WorkflowRun, current_run, reset_run, run_body, set_run

if TYPE_CHECKING:
    from ..app import App
    from ..registry import TaskSpec

P = ParamSpec("P")
R = TypeVar("R")


class Step(Generic[P, R]):
    """A function whose calls in a workflow body are recorded."""

    def __init__(self, fn: Callable[P, R], *, name: str | None = None, max_attempts: int = 1,
                 retry_base: float = DEFAULT_BASE, retry_cap: float = DEFAULT_CAP) -> None:
        if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or \
                max_attempts < 1:
            raise InvalidJob(f"max_attempts must be a positive int, not {max_attempts!r}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", None) or repr(fn)
        self.max_attempts = max_attempts
        self.retry_base, self.retry_cap = float(retry_base), float(retry_cap)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        run = current_run()
        if run is None:
            return self.fn(*args, **kwargs)
        return call_step(run, self, args, kwargs)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<Step {self.name}>"


def _failed(name: str, rec: StepRecord) -> StepFailed:
    e = rec.error or {}
    return StepFailed(f"step {name} failed after {rec.attempts} attempt(s): "
                      f"{e.get('type')}: {e.get('message')}")


def call_step(run: WorkflowRun, step: Step[Any, Any], args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> Any:
    seq, rec = run.next(step.name, "step")
    if rec is not None:
        if rec.state == "succeeded":
            return loads(rec.result or "null")
        if rec.state == "failed":
            raise _failed(step.name, rec)
    dumps([list(args), kwargs], f"arguments of step {step.name}")  # TypeError at the call
    attempts = rec.attempts if rec is not None else 0
    started = rec.started if rec is not None and rec.started else clock.now()
    while True:
        attempts += 1
        with step_scope(run.store.path) as scope:  # its once block commits with its record
            inner = set_run(None)  # a step's own calls (steps, enqueues) are plain calls
            try:
                value = step.fn(*args, **kwargs)
            except Exception as exc:
                scope.flush()  # a failed step's finished once blocks stand, as in any job
                _failure(run, step, exc, seq, attempts, started)
                continue  # inline mode: retries at once
            finally:
                reset_run(inner)
            result = dumps(value, f"return value of step {step.name}")  # TypeError here
            run.record(StepRecord(seq, step.name, "step", "succeeded", result, None, attempts,
                                  started, clock.now()), scope)
            return loads(result)  # what a replay gets: a tuple is a list on every run


def _failure(run: WorkflowRun, step: Step[Any, Any], exc: Exception, seq: int,
             attempts: int, started: float) -> None:
    """A failed attempt of a step: StepFailed once its attempts are spent, else wait (in
    the store) for its retry; inline, return to retry at once."""
    now = clock.now()
    entry = dict(failure_entry(exc, attempts, now))
    if attempts >= step.max_attempts or isinstance(exc, Permanent):
        done = StepRecord(seq, step.name, "step", "failed", None, entry, attempts, started, now)
        run.record(done)
        raise _failed(step.name, done) from exc
    delay = backoff(attempts, step.retry_base, step.retry_cap)
    if run.inline:
        return
    run.record(StepRecord(seq, step.name, "step", "retrying", None, entry, attempts,
                          started, None, until=now + delay))
    raise run.suspend(now + delay) from None


class Workflow(Task[P, R]):
    """A task whose body is replayed (see jobrun.workflows). Calling it directly runs the
    body here without records; calling it inside another body is refused."""

    def __init__(self, app: App, fn: Callable[P, R], spec: TaskSpec) -> None:
        super().__init__(app, fn, spec)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        run = current_run()
        if run is not None:
            raise NotInWorkflow(
                f"workflow {self.name} called directly inside workflow {run.task}: start it "
                f"as a child with jobrun.gather([{self.__name__}.call(...)]) or "
                f"{self.__name__}.enqueue(...)")
        return self.fn(*args, **kwargs)


def body_runner(app: App, fn: Callable[..., Any], max_steps: int) -> Callable[..., Any]:
    """The function the service runs for a workflow's job: the body under a WorkflowRun."""
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        return run_body(app, fn, max_steps, args, kwargs)
    return run
