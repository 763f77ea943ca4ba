"""A thread cannot be killed: past its timeout its attempt is recorded as timed out (it
retries as any failure), its slot stays taken until it returns, and its late result is
discarded."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ... import clock
from ...attempt import after_failure
from ...errors import TaskTimeout

if TYPE_CHECKING:
    from . import ServiceView

jlog = logging.getLogger("jobrun.job")


def time_out_threads(v: ServiceView) -> None:
    now_m = clock.monotonic()
    for a in v.inflight.attempts():
        claim = a.claim
        if a.kind != "thread" or not claim.timeout or v.inflight.was_timed_out(claim.token) \
                or now_m - a.started < claim.timeout:
            continue
        if claim.held and not a.begun:  # waiting for a worker: its time starts when it does
            continue
        v.inflight.timed_out(claim.token)
        a.ctx.cancel()
        outcome = after_failure(claim, TaskTimeout(
            f"timed out after {claim.timeout:g}s (a thread cannot be stopped: its slot "
            "stays taken until it returns)"), clock.now())
        v.store.record([outcome], now=clock.now())
        jlog.warning("job %s %s timed out after %gs in a thread; it keeps its slot until "
                     "it returns", claim.id, claim.task, claim.timeout,
                     extra={"jobrun": {"event": "timeout", "job_id": claim.id,
                                       "task": claim.task, "queue": claim.queue,
                                       "attempt": claim.attempt}})
        if outcome.state == "retrying":
            v.wake()
