"""Task options in one table: each option's check, and where it may be given.

`@app.task` and `@app.workflow` check their options here (at import time, not at the first
enqueue) and build the `TaskSpec` from them; `.options()` and jobs files take the per-job
names from here; the catalog publishes the `declared` ones as the task's defaults. A new
option is one row here, then the place it takes effect (`catalog.resolve` for a default,
`enqueue.new_job` for a per-job value, a column for a stored one: see ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import validate
from .errors import InvalidJob, InvalidValue
from .registry import TaskSpec


def _name(what: str) -> Callable[[Any], Any]:
    return lambda v: validate.text(v, what, empty=False)


def _seconds(what: str, above: bool = False) -> Callable[[Any], Any]:
    kind = "a number of seconds > 0" if above else "a number of seconds"
    return lambda v: validate.seconds(v, what, above=above, kind=kind)


def _executor(v: Any) -> Any:
    if v not in ("thread", "process"):
        raise InvalidJob(f"executor must be \"thread\" or \"process\", not {v!r}")
    return v


def _rate(what: str) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        from .limits import parse_rate  # here: only a task with a rate limit needs it

        try:
            parse_rate(v)
        except ValueError as exc:
            raise InvalidValue(f"{what}: {exc}") from None
        return v  # stored as written: the service parses it again
    return check


def _count(what: str) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        validate.positive(v, what)
        return v
    return check


def _any(v: Any) -> Any:
    return v


@dataclass(frozen=True)
class Option:
    """One option: `check` returns the value to keep or raises InvalidJob naming it."""

    name: str
    check: Callable[[Any], Any]
    task: bool = False      # `@app.task(name=value)`
    job: bool = False       # `.options(name=value)`, `App.enqueue(name=value)`
    in_file: bool = False   # a key of a jobs file's [[job]]
    declared: bool = False  # published in the catalog as the task's own default
    spec: bool = False      # a field of TaskSpec (else it goes into TaskSpec.extra)


OPTIONS: tuple[Option, ...] = (
    Option("queue", _name("queue"), task=True, job=True, in_file=True, declared=True,
           spec=True),
    Option("priority", lambda v: validate.integer(v, "priority"), task=True, job=True,
           in_file=True, declared=True, spec=True),
    Option("max_attempts", lambda v: validate.positive(v, "max_attempts"), task=True,
           job=True, in_file=True, declared=True, spec=True),
    Option("timeout", _seconds("timeout", above=True), task=True, declared=True, spec=True),
    Option("retry_base", _seconds("retry_base"), task=True, declared=True, spec=True),
    Option("retry_cap", _seconds("retry_cap"), task=True, declared=True, spec=True),
    Option("executor", _executor, task=True),
    Option("concurrency_key", _any, task=True, declared=True),
    Option("key_concurrency", _count("key_concurrency"), task=True),
    Option("rate_limit", _rate("rate_limit"), task=True),
    Option("key_rate_limit", _rate("key_rate_limit"), task=True),
    Option("delay", _any, job=True, in_file=True),
    Option("run_at", _any, job=True, in_file=True),
    Option("key", lambda v: validate.text(v, "key", validate.KEY_LIMIT), job=True,
           in_file=True),
    Option("trace_id", lambda v: validate.text(v, "trace_id"), job=True, in_file=True),
    Option("connection", _any, job=True),
    Option("allow_unknown", _any, job=True),
)
BY_NAME = {o.name: o for o in OPTIONS}
JOB_OPTIONS = frozenset(o.name for o in OPTIONS if o.job)
FILE_OPTIONS = frozenset(o.name for o in OPTIONS if o.in_file)
DECLARED = tuple(o.name for o in OPTIONS if o.declared)
_TASK = {o.name: o for o in OPTIONS if o.task}


def check_task(given: dict[str, Any]) -> dict[str, Any]:
    """The options of `@app.task(...)` (None: not given), checked; unknown names refused."""
    bad = set(given) - set(_TASK)
    if bad:
        raise InvalidJob(f"unknown task option(s): {', '.join(sorted(bad))}")
    out = {k: _TASK[k].check(v) for k, v in given.items() if v is not None}
    if (out.get("key_concurrency") or out.get("key_rate_limit")) \
            and not out.get("concurrency_key"):
        raise InvalidJob("key_concurrency and key_rate_limit need a concurrency_key")
    return out


def task_spec(name: str, fn: Callable[..., Any] | None, opts: dict[str, Any]) -> TaskSpec:
    """The registry's entry for a task: its options (as `check_task` returned them) as
    fields, the rest in `extra`."""
    fields = {k: v for k, v in opts.items() if BY_NAME[k].spec}
    return TaskSpec(validate.text(name, "task name", empty=False), fn, **fields,
                    extra={k: v for k, v in opts.items() if not BY_NAME[k].spec})


def declared(spec: TaskSpec) -> dict[str, Any]:
    """What a task declares itself, by option name (its fields, then its extra options)."""
    out: dict[str, Any] = {}
    for k in DECLARED:
        v = getattr(spec, k) if BY_NAME[k].spec else spec.extra.get(k)
        if v is not None and v != "":
            out[k] = v
    return out
