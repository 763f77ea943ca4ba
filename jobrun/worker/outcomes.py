"""Outcomes on their way from the executors to the store, and what is said once recorded.

Executors hand outcomes in from any thread; the loop takes them in its rounds. An attempt
told to stop by a drain is handed back, whatever it returned; one recorded at its timeout is
dropped. Once the store has them, each is logged and counted with what really happened: an
outcome whose lease was taken back (the job was cancelled or rescued meanwhile) is discarded
and said so, never logged as a success.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from ..attempt import log_outcome
from ..errors import StoreError
from ..model import BEGAN, FANIN, Claim, Outcome
from ..store.contract import Store
from .inflight import InFlight

jlog = logging.getLogger("jobrun.job")

Taken = list[tuple[Claim, Outcome]]


class Outcomes:
    def __init__(self, inflight: InFlight) -> None:
        self._q: deque[tuple[Claim, Outcome]] = deque()
        self._inflight = inflight

    def put(self, claim: Claim, outcome: Outcome) -> None:
        self._q.append((claim, outcome))

    def __bool__(self) -> bool:
        return bool(self._q)

    def take(self) -> Taken:
        out: Taken = []
        q, inflight = self._q, self._inflight
        pop, finish, timed_out = q.popleft, inflight.finish, inflight.timeouts
        while q:
            claim, o = pop()
            attempt = finish(claim.token)
            if timed_out and inflight.forget_timeout(claim.token):
                jlog.warning("job %s %s returned after its timeout: result discarded",
                             claim.id, claim.task)
                continue
            if attempt is None:
                pass
            elif attempt.ctx.stopping and o.state not in ("released", "suspended"):
                # Told to stop by a drain: whatever it returned or raised, its work did not
                # finish before the drain ended (a suspend is a clean end). It is handed
                # back, attempt not counted.
                o = Outcome(claim.id, claim.token, "released", extra=o.extra)
            elif attempt.began_at is not None:
                # A held attempt that began: its start goes with its outcome, which counts
                # it (its `began` row was left out of the rounds once the attempt ended).
                o.extra[BEGAN] = attempt.began_at
            out.append((claim, o))
        return out


def report(store: Store, taken: Taken, applied: frozenset[int],
           observe: Callable[[str, str, str, Any], None] | None) -> None:
    """Log and count outcomes once the store has them (`applied`: the tokens recorded)."""
    quiet = not jlog.isEnabledFor(logging.INFO)  # successes say nothing: no call per job
    unbegun = 0
    for claim, o in taken:
        if o.token in applied:
            if quiet and o.state in ("succeeded", "suspended"):
                pass
            elif o.state == "released" and o.extra.get("unstarted"):
                unbegun += 1  # held, never begun: one line for them all, below
            elif o.state == "released":
                jlog.warning("job %s %s handed back: the service is stopping (attempt not "
                             "counted)", claim.id, claim.task, extra={"jobrun": {
                                 "event": "released", "job_id": claim.id, "task": claim.task,
                                 "queue": claim.queue, "attempt": claim.attempt}})
            else:
                log_outcome(claim, o)
            state = o.state
        else:
            try:
                rec = store.get(claim.id)
            except StoreError:
                rec = None
            state = "cancelled" if rec is not None and rec.state == "cancelled" \
                else "discarded"
            why = "it was cancelled" if state == "cancelled" else "it was taken back"
            if o.extra.get("unstarted"):  # held, never begun: nothing ran, nothing to discard
                if observe is not None:
                    observe(claim.queue, claim.task, state, 0.0)
                continue
            jlog.warning("job %s %s %s: result discarded (%s while running)", claim.id,
                         claim.task, state, why,
                         extra={"jobrun": {"event": state, "job_id": claim.id,
                                           "task": claim.task, "queue": claim.queue,
                                           "attempt": claim.attempt, "returned": o.state}})
        if observe is not None:
            observe(claim.queue, claim.task, state, o.extra.get("duration"))
    if unbegun:  # a drain under load hands back hundreds: not a warning each
        jlog.info("%d held job(s) handed back before they began: the service is stopping "
                  "(no attempt counted)", unbegun, extra={"jobrun": {
                      "event": "released", "jobs": unbegun, "unstarted": True}})


def ended_gathered(taken: Taken, applied: frozenset[int]) -> bool:
    """Whether a recorded outcome ended a child of a `gather` (its fan-in may wake the
    parent, which the store's trigger does in the same transaction)."""
    return any(o.token in applied and o.state in ("succeeded", "dead") and
               claim.options.get(FANIN) for claim, o in taken)
