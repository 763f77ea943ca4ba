"""Take back the running jobs of dead holders (within a second of the death: their liveness
lock is free) and of expired leases (a holder alive but stuck); the attempt counts. A dead
holder's held jobs that its began log shows never began go back uncounted (began.py)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ... import began
from ...store.contract import Rescued

if TYPE_CHECKING:
    from . import ServiceView

jlog = logging.getLogger("jobrun.job")


def dead_holders(v: ServiceView, now: float) -> int:
    n = 0
    for h in v.store.running_holders():
        if h != v.holder and not v.presence.alive(h):
            path = v.presence.began_path(h)  # which of its held jobs began
            n += _said(v, v.store.rescue_holder(h, f"worker lost: {v.presence.lost(h)}",
                                                now=now,
                                                begun=began.read(path) if path else None))
            if path:
                began.forget(path)
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
        if r.unspent:
            jlog.info("job %s %s handed back: its service died before it began there "
                      "(attempt not counted)", r.id, r.task,
                      extra={"jobrun": {"event": "handed_back", "job_id": r.id,
                                        "task": r.task, "queue": r.queue}})
            continue
        jlog.warning("job %s %s rescued after its holder was lost: now %s (attempt %s "
                     "counted)", r.id, r.task, r.state, r.attempts,
                     extra={"jobrun": {"event": "rescued", "job_id": r.id, "task": r.task,
                                       "queue": r.queue, "attempt": r.attempts,
                                       "outcome": r.state}})
    if rows:
        v.wake()
    return len(rows)
