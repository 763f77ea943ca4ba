"""Enqueue in one place: a call and its options checked and turned into the row it writes.

`App.enqueue`, `enqueue_many` (so the CLI and jobs files), and the scheduler's cron fires
all build their `NewJob` here, from the task's defaults (`catalog.resolve`) and the options
given for the job; nothing is written here. Errors are `InvalidJob` (a `TypeError`) naming
the bad value:
nothing is stored.
"""

from __future__ import annotations

import inspect
import os
import sys
from datetime import datetime
from typing import Any

from . import clock, validate
from .catalog import TaskDefaults
from .errors import InvalidJob, InvalidValue
from .model import NewJob
from .options import BY_NAME
from .registry import REGISTRY, Registry
from .serialize import MAX_PAYLOAD, bounded, dumps

LATEST = clock.NEVER  # run_at must be a real time, before the one that means 'when woken'


def trace_id(given: str | None = None) -> str:
    """The caller's, else the active OpenTelemetry trace's, else a new one."""
    if given:
        return given
    # Only if the caller's process uses OpenTelemetry already: never import it per enqueue.
    otel = sys.modules.get("opentelemetry.trace")
    if otel is not None:
        try:
            span_ctx = otel.get_current_span().get_span_context()
            if span_ctx.is_valid:
                return f"{span_ctx.trace_id:032x}"
        except Exception:  # a broken tracer must not break enqueue
            pass
    return os.urandom(16).hex()  # what secrets.token_hex does, without loading OpenSSL


def new_job(task: str, args: Any, kwargs: Any, opts: dict[str, Any] | None, now: float,
            d: TaskDefaults, trace: str | None = None, *,
            registry: Registry = REGISTRY) -> NewJob:
    """The row for one call of `task`: arguments bound against its signature (when it is
    registered here), options checked, JSON encoded."""
    if args is None:
        args = ()
    elif not isinstance(args, (list, tuple)):
        raise InvalidJob(f"args of {task} must be a list, not {type(args).__name__}")
    if kwargs is None:
        kwargs = {}
    elif not isinstance(kwargs, dict):
        raise InvalidJob(f"kwargs of {task} must be a dict, not {type(kwargs).__name__}")
    spec = registry.find(task)
    if spec is not None and spec.fn is not None:  # registered here: bind as it will run
        validate.bind(spec.fn, task, args, kwargs)
    priority, max_attempts, run_at, key = d.priority, d.max_attempts, now, None
    if opts:
        for k, v in opts.items():  # each option's own check (options.py); its meaning below
            if v is not None:
                BY_NAME[k].check(v)
        if opts.get("priority") is not None:
            priority = int(opts["priority"])
        if opts.get("max_attempts") is not None:
            max_attempts = int(opts["max_attempts"])
        if opts.get("run_at") is not None:
            if not isinstance(opts["run_at"], datetime):
                raise InvalidJob("run_at must be an aware datetime")
            if opts["run_at"].tzinfo is None:
                raise InvalidValue(f"run_at must be an aware datetime (with a tzinfo), not "
                                 f"{opts['run_at']!r}")
            run_at = clock.to_timestamp(opts["run_at"])
            if not 0 <= run_at < LATEST:
                raise InvalidJob(f"run_at {opts['run_at']!r} is out of range")
        elif opts.get("delay") is not None:
            run_at = now + validate.seconds(
                opts["delay"], "delay", 0.0, LATEST - now,
                kind="a number of seconds >= 0 (and before the year 9999)")
        key = opts.get("key")
        trace = opts.get("trace_id") or trace
    ckey = None
    if d.concurrency_key is not None:
        named = kwargs
        if args and spec is not None and spec.fn is not None:  # positional ones by name too
            try:
                named = {**inspect.signature(spec.fn).bind(*args, **kwargs).arguments}
            except (TypeError, ValueError):
                named = kwargs
        try:
            ckey = d.concurrency_key.format(**named)
        except (KeyError, IndexError, ValueError) as exc:
            raise InvalidJob(f"concurrency_key {d.concurrency_key!r} of {task} cannot be "
                            f"formatted from its keyword arguments: missing {exc}") from None
    options = d.options
    args_json = bounded(dumps(args, f"arguments of {task}"), f"arguments of {task}")
    kwargs_json = bounded(dumps(kwargs, f"keyword arguments of {task}"),
                          f"keyword arguments of {task}", MAX_PAYLOAD - len(args_json))
    return NewJob(
        task=task, queue=d.queue, args=args_json, kwargs=kwargs_json, priority=priority,
        max_attempts=max_attempts, run_at=run_at, scheduled=run_at > now, key=key,
        trace_id=trace or trace_id(None), timeout=d.timeout,
        options=dumps(options) if options else "{}", concurrency_key=ckey)
