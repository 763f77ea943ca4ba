"""Which queues this service serves alone: only there may it hold jobs ahead of its free
workers. Another live service on the queue would see the host-wide cap taken by jobs that
wait here, and the two together could run more than the cap: it turns holding off within a
second of publishing itself (see loop.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import ServiceView

EVERY = 1.0


def look(v: ServiceView) -> None:
    live = v.presence.live_queues()
    mine = [q for q, holders in live.items() if v.holder in holders]
    v.alone(frozenset(q for q in mine if all(h == v.holder for h in live[q])))
