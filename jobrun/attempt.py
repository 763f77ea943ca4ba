"""One attempt: run the task with its Context, and after_failure what the store records.

The decision (succeeded, retrying at t, dead) is a pure function of the attempt and the error;
running and recording live elsewhere (executors, service).
"""

from __future__ import annotations

import logging
import random
import traceback
from collections.abc import Callable
from typing import Any

from . import clock
from .context import Context, reset, set_current
from .errors import NonDeterministic, Permanent, Retry, StepFailed, TaskTimeout, UnknownTask
from .model import Claim, ErrorEntry, Outcome, error_entry
from .registry import Registry
from .retry import DEFAULT_BASE, DEFAULT_CAP, backoff
from .serialize import bounded, dumps

log = logging.getLogger("jobrun.job")
MAX_TRACEBACK = 16_384
#: Failures a workflow's retry cannot mend (its replay would meet them again): dead at once.
_FOR_GOOD = (Permanent, UnknownTask, NonDeterministic, StepFailed)


class Suspend(BaseException):
    """A workflow body waits (a sleep, an event, its children, a step's retry): the attempt
    ends without counting, and the job waits in the store until `run_at` or a wake. A
    BaseException, so that a body's `except Exception` does not swallow it."""

    def __init__(self, run_at: float) -> None:
        super().__init__(f"workflow suspended until {run_at}")
        self.run_at = run_at


def failure_entry(exc: BaseException, attempt: int, now: float, *,
                  with_traceback: bool = True) -> ErrorEntry:
    tb = "".join(traceback.format_exception(exc))[-MAX_TRACEBACK:] if with_traceback else ""
    return error_entry(type(exc).__name__, str(exc), attempt, now, traceback=tb)


def after_failure(claim: Claim, exc: BaseException, now: float, rng: random.Random | None = None
           ) -> Outcome:
    """What a failed attempt becomes: dead (Permanent, unknown task, attempts used up) or
    retrying after Retry.delay or a full-jitter backoff."""
    entry = failure_entry(exc, claim.attempt, now,
                          with_traceback=not isinstance(exc, (Retry, *_FOR_GOOD)))
    if isinstance(exc, _FOR_GOOD) or claim.attempt >= claim.max_attempts:
        return Outcome(claim.id, claim.token, "dead", error=entry)
    if isinstance(exc, Retry) and exc.delay is not None:
        delay = max(0.0, float(exc.delay))
    else:
        opts = claim.options
        delay = backoff(claim.attempt, float(opts.get("retry_base", DEFAULT_BASE)),
                        float(opts.get("retry_cap", DEFAULT_CAP)), rng)
    entry["retry_in"] = round(delay, 3)
    return Outcome(claim.id, claim.token, "retrying", run_at=now + delay, error=entry)


def resolve(claim: Claim, registry: Registry) -> Callable[..., Any]:
    spec = registry.get(claim.task)
    if spec.fn is None:
        raise UnknownTask(f"task {claim.task!r} has no Python function in this process")
    return spec.fn


def succeed(claim: Claim, value: Any) -> Outcome:
    if value is None:  # most jobs: no result to encode
        return Outcome(claim.id, claim.token, "succeeded", result="null")
    try:
        result = bounded(dumps(value, f"return value of {claim.task}"),
                         f"return value of {claim.task}")
    except TypeError as exc:
        return after_failure(claim, Permanent(str(exc)), clock.now())
    return Outcome(claim.id, claim.token, "succeeded", result=result)


def new_context(claim: Claim) -> Context:
    return Context(claim.id, claim.attempt, claim.task, claim.trace_id, claim.queue, claim.token)


def run_attempt(claim: Claim, registry: Registry, ctx: Context | None = None, *,
                log_it: bool = True) -> Outcome:
    """Run one attempt in this thread and return its outcome (never raises)."""
    started = clock.timer()
    token = set_current(ctx or new_context(claim))
    try:
        outcome = succeed(claim, resolve(claim, registry)(*claim.args, **claim.kwargs))
    except Suspend as exc:
        outcome = Outcome(claim.id, claim.token, "suspended", run_at=exc.run_at)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        outcome = after_failure(claim, exc, clock.now())
    finally:
        reset(token)
    outcome.extra["duration"] = clock.timer() - started
    if log_it:
        log_outcome(claim, outcome)
    return outcome


async def run_attempt_async(claim: Claim, registry: Registry, ctx: Context | None = None
                            ) -> Outcome:
    """An `async def` task on the service's loop; its timeout cancels it."""
    import asyncio  # here: a service with no async task never loads asyncio

    started = clock.timer()
    token = set_current(ctx or new_context(claim))
    try:
        coro = resolve(claim, registry)(*claim.args, **claim.kwargs)
        if claim.timeout:
            value = await asyncio.wait_for(coro, claim.timeout)
        else:
            value = await coro
        outcome = succeed(claim, value)
    except TimeoutError:
        outcome = after_failure(claim, TaskTimeout(f"timed out after {claim.timeout:g}s (cancelled)"),
                         clock.now())
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        outcome = after_failure(claim, exc, clock.now())
    finally:
        reset(token)
    outcome.extra["duration"] = clock.timer() - started
    return outcome


def log_outcome(claim: Claim, outcome: Outcome) -> None:
    """One line per job event: id, task, queue, attempt, duration, outcome."""
    level = logging.INFO if outcome.state in ("succeeded", "suspended") else logging.WARNING
    if not log.isEnabledFor(level):
        return
    fields: dict[str, Any] = {
        "event": outcome.state, "job_id": claim.id, "task": claim.task, "queue": claim.queue,
        "attempt": claim.attempt, "duration": round(outcome.extra.get("duration", 0.0), 6),
        "trace_id": claim.trace_id,
    }
    msg = f"job {claim.id} {claim.task} {outcome.state}"
    if outcome.error:
        fields["error"] = f"{outcome.error['type']}: {outcome.error['message']}"
        msg += f": {fields['error']}"
        if outcome.state == "retrying":
            fields["retry_in"] = outcome.error.get("retry_in")
            msg += f" (retry in {fields['retry_in']}s)"
    log.log(level, msg, extra={"jobrun": fields})
