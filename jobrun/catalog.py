"""The task catalog: which tasks the services of a store run, and what a job of each gets.

Services publish their tasks with the options a job of each gets (its own declared ones,
filled in from the service's queue config); a producer that never imported a task's module
(`app.enqueue("mod:fn")`, `jobrun enqueue`, a jobs file) resolves against it, so a job means
the same however it is enqueued. A name the catalog does not know is refused at enqueue
(`UnknownTask`, with the closest known names), unless no service ever ran on the store.

`resolve` and `effective` are pure; `CatalogView` caches what a producer read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from . import clock
from .config import CommandTask, Settings
from .model import Declaration
from .options import declared
from .registry import TaskSpec
from .retry import DEFAULT_MAX_ATTEMPTS

#: A declaration this recent keeps its task's jobs waiting for a service (which may be
#: restarting, or deploying) even when none runs it now; older ones go dead (UnknownTask).
RECENT = 7 * 86400.0
REFRESH = 1.0    # a producer rereads the catalog on a miss at most this often
TTL = 30.0       # and at least this often


@dataclass(frozen=True)
class TaskDefaults:
    """What a job of a task gets unless its enqueue says otherwise."""

    queue: str
    priority: int
    max_attempts: int
    timeout: float | None
    retry_base: float | None
    retry_cap: float | None
    concurrency_key: str | None

    @property
    def options(self) -> dict[str, Any]:
        """The retry settings a job row carries in its `options` column."""
        out: dict[str, Any] = {}
        if self.retry_base is not None:
            out["retry_base"] = self.retry_base
        if self.retry_cap is not None:
            out["retry_cap"] = self.retry_cap
        return out


def _declared(spec: TaskSpec | None, cmd: CommandTask | None) -> dict[str, Any]:
    """What the task itself says (not its queue): spec first, then its TOML command."""
    out: dict[str, Any] = {}
    if spec is not None:
        out.update(declared(spec))
    if cmd is not None:
        for k in ("queue", "max_attempts", "timeout"):
            if getattr(cmd, k) is not None and k not in out:
                out[k] = getattr(cmd, k)
    return out


def resolve(spec: TaskSpec | None, cmd: CommandTask | None, entry: dict[str, Any] | None,
            settings: Settings, queue: str | None = None) -> TaskDefaults:
    """A task's defaults: what it declares (locally, else as the catalog says), then its
    queue's config (the producer's own if it configures that queue, else the service's, as
    the catalog says), then jobrun's defaults. `queue` is an explicit choice of queue."""
    declared = _declared(spec, cmd)
    if entry is not None:
        for k, v in (entry.get("declared") or {}).items():
            declared.setdefault(k, v)
    name = queue or declared.get("queue") or (entry or {}).get("queue") or "default"
    local = settings.queues.get(name)
    # The service's queue-level values apply when the job goes to the queue they were
    # computed for, and this producer has no config of that queue itself.
    served = entry if entry is not None and entry.get("queue") == name and local is None \
        else {}
    q = settings.queue(name)

    def pick(key: str, queue_value: Any, default: Any) -> Any:
        if declared.get(key) is not None:
            return declared[key]
        if local is not None and queue_value is not None:
            return queue_value
        if served.get(key) is not None:
            return served[key]
        return queue_value if queue_value is not None else default

    return TaskDefaults(
        queue=name,
        priority=int(declared.get("priority") or 0),
        max_attempts=int(pick("max_attempts", q.max_attempts, DEFAULT_MAX_ATTEMPTS)),
        timeout=pick("timeout", q.timeout, None),
        retry_base=pick("retry_base", q.retry_base, None),
        retry_cap=pick("retry_cap", q.retry_cap, None),
        concurrency_key=declared.get("concurrency_key"),
    )


def effective(spec: TaskSpec | None, cmd: CommandTask | None, settings: Settings
              ) -> dict[str, Any]:
    """The catalog entry a service publishes for one of its tasks."""
    d = asdict(resolve(spec, cmd, None, settings))
    d["declared"] = _declared(spec, cmd)
    d["kind"] = "command" if cmd is not None or (spec is not None and spec.command) \
        else "function"
    return d


def entries(specs: list[TaskSpec], settings: Settings) -> dict[str, str]:
    """task -> JSON of its entry, for every task a service runs."""
    return {spec.name: json.dumps(effective(spec, settings.tasks.get(spec.name), settings),
                                  sort_keys=True) for spec in specs}


def close_matches(name: str, known: list[str]) -> list[str]:
    """The known names a typo most likely meant (also matching on the function name)."""
    import difflib  # here: only a name nobody declares needs it

    out = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    tail = name.rpartition(":")[2]
    for k in known:
        if k not in out and k.rpartition(":")[2] == tail:
            out.append(k)
    return out[:5]


def recent(declarations: list[tuple[str, float]], alive: Callable[[str], bool], now: float
           ) -> bool:
    """Whether a task's declarations [(holder, seen_at)] keep its jobs waiting: a live
    holder runs it, or one ran it within RECENT."""
    return any(seen >= now - RECENT for _, seen in declarations) or \
        any(alive(holder) for holder, _ in declarations)


class CatalogView:
    """A producer's cached copy of the catalog: reread on a miss (at most once a second)
    and every TTL seconds, so a producer sees new services and deploys without a restart."""

    def __init__(self, read: Callable[[], list[Declaration]],
                 born: Callable[[], float | None]) -> None:
        self._read = read
        self._born = born
        self._tasks: dict[str, dict[str, Any]] = {}
        self._read_at: float | None = None
        self.empty = True

    def _refresh(self) -> None:
        tasks: dict[str, dict[str, Any]] = {}
        for task, _holder, options, _seen in self._read():  # newest first per task
            tasks.setdefault(task, options)
        self._tasks = tasks
        self.empty = not tasks and self._born() is None
        self._read_at = clock.monotonic()

    def lookup(self, name: str) -> dict[str, Any] | None:
        now = clock.monotonic()
        if self._read_at is None or now - self._read_at >= TTL or \
                (name not in self._tasks and now - self._read_at >= REFRESH):
            self._refresh()
        return self._tasks.get(name)

    def names(self) -> list[str]:
        return sorted(self._tasks)
