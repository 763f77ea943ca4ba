"""Running one job to its end in the caller's thread: `jobrun.testing.inline` mode.

Retries run at once, ignoring backoff and delay, so a user's test sees the job's final state
as soon as `enqueue` returns. The attempt holds a lease under a holder whose lock is live, so
a service on the same store leaves it alone.
"""

from __future__ import annotations

from . import clock
from .attempt import new_context, run_attempt
from .registry import REGISTRY, Registry
from .store.contract import Store


def run_inline(store: Store, holder: str, job_id: int, *,
               registry: Registry = REGISTRY, max_rounds: int = 1000) -> None:
    for _ in range(max_rounds):
        claim = store.acquire_job(job_id, holder, now=clock.now(), lease=3600.0)
        if claim is None:
            return  # finished, or a key de-duplicated onto a job that is not waiting
        ctx = new_context(claim)
        ctx.store = store.path
        outcome = run_attempt(claim, registry, ctx)
        if outcome.state == "retrying":
            outcome.run_at = clock.now()
        store.record([outcome], now=clock.now())
        if outcome.state != "retrying":
            return
