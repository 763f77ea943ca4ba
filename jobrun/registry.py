"""Task name -> callable: the allow-list the service runs. Nothing else is ever imported."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import UnknownTask


@dataclass
class TaskSpec:
    """What the service needs to run a task, and its enqueue defaults (None: the queue's)."""

    name: str
    fn: Callable[..., Any] | None
    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    timeout: float | None = None
    retry_base: float | None = None
    retry_cap: float | None = None
    command: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def task_name(fn: Callable[..., Any]) -> str:
    """`module:qualname`, the name a job row carries."""
    return f"{fn.__module__}:{fn.__qualname__}"


class Registry:
    def __init__(self) -> None:
        self._tasks: dict[str, TaskSpec] = {}
        self._lock = threading.Lock()

    def add(self, spec: TaskSpec) -> None:
        with self._lock:
            self._tasks[spec.name] = spec

    def get(self, name: str) -> TaskSpec:
        try:
            return self._tasks[name]
        except KeyError:
            raise UnknownTask(f"task {name!r} is not registered in this process "
                              "(is its module listed in `import`?)") from None

    def find(self, name: str) -> TaskSpec | None:
        return self._tasks.get(name)

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def __contains__(self, name: object) -> bool:
        return name in self._tasks


#: Tasks registered by any App in this process: what `jobrun start` runs.
REGISTRY = Registry()
