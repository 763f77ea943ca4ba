"""Task and its per-call options: `@app.task` functions, `.enqueue`, `.options`, `.call`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from .errors import InvalidJob
from .options import JOB_OPTIONS
from .registry import TaskSpec

if TYPE_CHECKING:
    from .app import App
    from .job import Job

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Call:
    """One pending enqueue: `task.call(...)`, for `App.enqueue_many`."""

    task: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


class TaskOptions(Generic[P, R]):
    """`task.options(delay=30, key=...)`: the same task with per-enqueue options."""

    def __init__(self, task: Task[P, R], options: dict[str, Any]) -> None:
        bad = set(options) - JOB_OPTIONS
        if bad:
            raise InvalidJob(f"unknown enqueue option(s): {', '.join(sorted(bad))}")
        self.task = task
        self.opts = options

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        return self.task.app.enqueue(self.task.name, args=list(args), kwargs=dict(kwargs),
                                     **self.opts)

    def call(self, *args: P.args, **kwargs: P.kwargs) -> Call:
        return Call(self.task.name, tuple(args), dict(kwargs), dict(self.opts))


class Task(Generic[P, R]):
    """A registered function. Calling it runs it here; `.enqueue` stores a job."""

    def __init__(self, app: App, fn: Callable[P, R], spec: TaskSpec) -> None:
        self.app = app
        self.fn = fn
        self.spec = spec
        self.name = spec.name
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", spec.name)
        self.__wrapped__ = fn

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        return self.app.enqueue(self.name, args=list(args), kwargs=dict(kwargs))

    def options(self, **options: Any) -> TaskOptions[P, R]:
        return TaskOptions(self, options)

    def call(self, *args: P.args, **kwargs: P.kwargs) -> Call:
        return Call(self.name, tuple(args), dict(kwargs), {})

    def __repr__(self) -> str:
        return f"<Task {self.name}>"
