"""Tell attempts whose job was cancelled or taken back: they should stop, and their result
will be refused by its fencing token anyway."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import ServiceView

jlog = logging.getLogger("jobrun.job")


def stop_fenced(v: ServiceView, liveness_lost: bool = False) -> None:
    """Ask attempts whose job is no longer theirs to stop. After a liveness loss, those taken
    back also hold the loop's claims until they end (inflight.taken_back)."""
    attempts = v.inflight.attempts()
    if not attempts:
        return
    seen = v.store.attempt_states(sorted({a.claim.id for a in attempts}))
    for a in attempts:
        claim, ctx = a.claim, a.ctx
        r = seen.get(claim.id)
        if r is not None and r.state == "running" and r.token == claim.token:
            continue
        if liveness_lost and (r is None or r.state != "cancelled"):
            v.inflight.taken_back(claim.token)  # even if told already, by an earlier round
        if claim.token not in v.inflight or ctx.cancelled:
            continue  # it finished while we looked (its own outcome said so), or was told
        ctx.cancel()
        what = "cancelled" if r is not None and r.state == "cancelled" else "taken back"
        how = "while held: it will not start" if claim.held and not a.begun else \
            "while running: asked to stop"
        jlog.warning("job %s %s %s %s", claim.id, claim.task, what, how,
                     extra={"jobrun": {"event": "cancelled" if what == "cancelled" else "fenced",
                                       "job_id": claim.id, "task": claim.task,
                                       "queue": claim.queue, "attempt": claim.attempt}})
        v.cancel_running(claim.id)
