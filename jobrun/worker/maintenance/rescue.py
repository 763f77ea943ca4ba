"""Take back the running jobs of dead holders (within a second of the death: their liveness
lock is free) and of expired leases (a holder alive but stuck); the attempt counts."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ...store.contract import Rescued

if TYPE_CHECKING:
    from . import ServiceView

jlog = logging.getLogger("jobrun.job")


def dead_holders(v: ServiceView, now: float) -> int:
    n = 0
    for h in v.store.running_holders():
        if h != v.holder and not v.presence.alive(h):
            n += _said(v, v.store.rescue_holder(h, f"worker lost: {v.presence.lost(h)}",
                                                now=now))
    return n


def expired_leases(v: ServiceView, now: float) -> int:
    n = 0
    for e in v.store.expired_leases(now=now):
        if e.holder != v.holder:
            n += _said(v, v.store.rescue_expired(
                e.id, f"worker lost: lease of {e.holder} expired (alive but stuck?)", now=now))
    return n


def _said(v: ServiceView, rows: list[Rescued]) -> int:
    for r in rows:
        jlog.warning("job %s %s rescued after its holder was lost: now %s (attempt %s "
                     "counted)", r.id, r.task, r.state, r.attempts,
                     extra={"jobrun": {"event": "rescued", "job_id": r.id, "task": r.task,
                                       "queue": r.queue, "attempt": r.attempts,
                                       "outcome": r.state}})
    if rows:
        v.wake()
    return len(rows)
