"""Delete finished jobs past their retention (dead ones after `dead_retention`), in small
batches so no write lock is held for long."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import ServiceView

log = logging.getLogger("jobrun.service")


def prune(v: ServiceView, now: float) -> int:
    s = v.settings()
    n = v.store.prune(now - s.retention, ("succeeded", "cancelled"))
    n += v.store.prune(now - s.dead_retention, ("dead",))
    if n:
        log.info("pruned %d finished job(s) older than %ss", n, s.retention)
    return n
