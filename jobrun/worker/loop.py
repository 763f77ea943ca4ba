"""The service's loop: a round, dispatch, wait.

One thread talks to the store for claims: each round records the outcomes that came in,
promotes due jobs and claims as many jobs as there are free slots, all in one transaction
(batching is the lever). In a queue this service serves alone it also holds jobs ahead of
its free workers, about twice what the queue finished since the last round (up to the
queue's `prefetch`), so that jobs of microseconds are claimed many to a round: a held job
counts no attempt until a worker starts it, and the next round records that start. Claims
go to the executors; their outcomes come back through `done`, from any thread, and wake
the loop if it sleeps. Idle, it sleeps on the doorbell (producers ring it) until the next
due time or the fallback poll.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import began, clock
from ..attempt import after_failure
from ..config import Settings
from ..context import Context
from ..errors import StoreError
from ..executors.pools import Pools
from ..limits import Limits
from ..model import Claim, Outcome
from ..presence import presence_for
from ..presence.contract import Doorbell, Ringer
from ..store.contract import Round, Store
from . import outcomes as outcomes_mod
from .inflight import InFlight

log = logging.getLogger("jobrun.service")
BEGAN_LOG_MAX = 64 * 1024  # bytes: children's began records are dropped past this (8 a job)
GATHER = 0.002  # s: the longest a busy loop lets outcomes gather while held jobs last
jlog = logging.getLogger("jobrun.job")


@dataclass(frozen=True)
class ClaimPlan:
    """What the loop claims, swapped whole on a reload: per queue the jobs this service may
    run, how many it may hold ahead (and whether that is a fixed `prefetch`), the limits,
    and the tasks it runs."""

    caps: dict[str, int]
    ahead: dict[str, tuple[int, bool]] = field(default_factory=dict)
    limits: Limits | None = None
    limited: frozenset[str] = frozenset()
    tasks: frozenset[str] | None = None


def drained(claims: list[Claim], wants: dict[str, int], caps: dict[str, int]) -> bool:
    """Whether a round found fewer jobs than it asked for in every queue: nothing more is
    waiting for this service (a queue with no free slot was not asked, so it may hold more;
    a queue under key or rate limits may hold jobs that our outcomes make claimable)."""
    if not wants or len(wants) < len(caps):
        return False
    got: dict[str, int] = {}
    for c in claims:
        got[c.queue] = got.get(c.queue, 0) + 1
    return all(got.get(q, 0) < n for q, n in wants.items())


def log_started(claim: Claim, log_args: bool) -> None:
    fields: dict[str, Any] = {"event": "started", "job_id": claim.id, "task": claim.task,
                              "queue": claim.queue, "attempt": claim.attempt,
                              "trace_id": claim.trace_id}
    if log_args:
        fields["args"], fields["kwargs"] = claim.args, claim.kwargs
    jlog.info("job %s %s started (attempt %s)", claim.id, claim.task, claim.attempt,
              extra={"jobrun": fields})


class Loop:
    def __init__(self, store: Store, holder: str, path: str, settings: Callable[[], Settings],
                 bell: Doorbell, pools: Pools, inflight: InFlight,
                 observe: Callable[[str, str, str, Any], None] | None = None) -> None:
        self.store, self.holder, self.path = store, holder, path
        self._settings = settings
        self.bell = bell
        self.pools = pools
        self.inflight = inflight
        self.outcomes = outcomes_mod.Outcomes(inflight)
        self.observe = observe
        self.plan = ClaimPlan({})
        self.draining = False   # no new claims
        self.halting = False    # one last round, then return
        self._sleeping = False
        self.healthy_at = clock.monotonic()
        # Carried from round to round:
        self._next_due: float | None = None
        self._paused: frozenset[str] = frozenset()
        self._rung = True
        self._last_full = -1e18
        self._failures = 0
        self._reported = 0.0
        self._ringer: Ringer | None = None
        self._dry = False       # the last round found no more jobs for any free slot
        self._hold_until: float | None = None  # outcomes held for the next claiming round
        self.alone: frozenset[str] = frozenset()  # queues no other live service serves
        self._gather_until: float | None = None  # outcomes gathered while held jobs last
        self.began_path: str | None = None  # this service's began log (began.py)
        self._rounds = 0

    # -- from other threads ------------------------------------------------------------------
    def done(self, claim: Claim, outcome: Outcome) -> None:
        """An executor's attempt ended (any thread)."""
        self.outcomes.put(claim, outcome)
        if self._sleeping:
            self._sleeping = False
            self.bell.wake()

    def wake(self) -> None:
        self.bell.wake()

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> None:
        pending: outcomes_mod.Taken = []
        while True:
            pending.extend(self.outcomes.take())
            halting = self.halting
            plan = self.plan
            stopped = self.draining or self.inflight.holds_taken_back()
            wants = {} if stopped else self._wants(plan)
            now_m, now = clock.monotonic(), clock.now()
            self._note_retries(pending)
            due = self._next_due is not None and self._next_due <= now
            full = self._rung or due or now_m - self._last_full >= self._settings().poll
            if pending and not (full or halting or self.draining) and self._hold(pending, now_m):
                pass  # quiet: they go with the round that claims the next job
            elif pending and not (halting or self.draining) and self._gather(now_m):
                until = self._gather_until or now_m  # looked at again every GATHER / 4
                self._rung = self.bell.wait(min(GATHER / 4, max(0.0, until - now_m))) or \
                    self._rung
                continue  # busy: the workers have held jobs to go on with
            elif pending or (wants and full):
                ahead = {} if stopped else self._ahead(plan, pending)
                r = self._round(pending, wants, plan, full, now, ahead)
                if r is None:
                    if halting:
                        return
                    time.sleep(0.5)
                    continue
                outcomes_mod.report(self.store, pending, r.applied, self.observe)
                if outcomes_mod.ended_gathered(pending, r.applied):
                    self._ring_others()
                pending = []
                self._hold_until = self._gather_until = None
                self._dry = r.retry_in is None and not (plan.limited & wants.keys()) and \
                    drained(r.claims, wants, plan.caps)
                self._after(r, full, now_m, now)
                self._trim_began()
                if r.claims:
                    self._dispatch(r.claims)
            self.healthy_at = clock.monotonic()
            if halting:
                return
            self._wait()

    def _hold(self, pending: outcomes_mod.Taken, now_m: float) -> bool:
        """Whether to hold this round's outcomes. In a quiet service (the last round found
        nothing more to claim) a round for outcomes alone is a commit of its own, pages
        written to the WAL once more: successes wait up to `record_delay` for the round that
        claims the next job (a doorbell, a due job), and go in its commit. Anything else
        (a failure, a workflow's wait, a handed-back job) is recorded at once."""
        if not self._dry or self.inflight.has_began() or \
                any(o.state != "succeeded" for _, o in pending):
            return False
        if self._hold_until is None:
            delay = self._settings().record_delay
            if delay <= 0:
                return False
            self._hold_until = now_m + delay
        return now_m < self._hold_until

    def _gather(self, now_m: float) -> bool:
        """Whether to let outcomes gather (up to GATHER) before a round: while this service
        still holds jobs for its process children, whose outcomes come one by one over
        their pipes, a round now would record one or two outcomes a commit; a little later
        it records many, and claims as many more (batching is the lever). Threads' outcomes
        come as fast as the loop takes them: for them a wait is only time lost (bench_io:
        -15% with it). A failure waits as long: its retry is due later anyway."""
        if self.inflight.held_apart <= 0:
            return False
        if self._gather_until is None:
            self._gather_until = now_m + GATHER
        return now_m < self._gather_until

    def _wants(self, plan: ClaimPlan) -> dict[str, int]:
        """Free slots per queue (held jobs waiting here fill slots first)."""
        wants: dict[str, int] = {}
        busy = self.inflight.busy
        for q, cap in plan.caps.items():
            free = cap - busy.get(q, 0)
            if free > 0:
                wants[q] = free
        return wants

    def _ahead(self, plan: ClaimPlan, pending: outcomes_mod.Taken) -> dict[str, int]:
        """Jobs to hold ahead per queue served alone: a fixed `prefetch` keeps that many;
        otherwise twice what finished since the last round, up to the most it may hold."""
        if not plan.ahead or not self.alone:
            return {}
        finished: dict[str, int] = {}
        for c, _ in pending:
            finished[c.queue] = finished.get(c.queue, 0) + 1
        held = self.inflight.held
        out: dict[str, int] = {}
        for q, (most, fixed) in plan.ahead.items():
            if q not in self.alone:
                continue
            want = (most if fixed else min(most, 2 * finished.get(q, 0))) - held.get(q, 0)
            if want > 0:
                out[q] = want
        return out

    def _note_retries(self, pending: outcomes_mod.Taken) -> None:
        for _, o in pending:
            if o.state in ("retrying", "suspended") and o.run_at is not None and \
                    (self._next_due is None or o.run_at < self._next_due):
                self._next_due = o.run_at

    def _round(self, pending: outcomes_mod.Taken, wants: dict[str, int], plan: ClaimPlan,
               full: bool, now: float, ahead: dict[str, int]) -> Round | None:
        """One store round; None if it failed (the loop must outlive any one bad round)."""
        began = self.inflight.take_began()
        try:
            r = self.store.acquire_round(
                [o for _, o in pending], wants, self.holder, now=now,
                lease=self._settings().lease, full=full, paused=self._paused,
                next_due=self._next_due, limits=plan.limits, limited=plan.limited,
                tasks=plan.tasks, ahead=ahead, began=began)
        except Exception as exc:
            self.inflight.began_again(began)  # recorded by the next round that works
            self._failures += 1
            if clock.monotonic() - self._reported >= 10 or self._failures == 1:
                self._reported = clock.monotonic()  # once per 10 s while it lasts
                more = f" ({self._failures} rounds so far)" if self._failures > 1 else ""
                if isinstance(exc, StoreError):
                    log.error("store round failed, retrying every 0.5s%s: %s", more, exc)
                else:
                    log.exception("store round failed, retrying every 0.5s%s", more)
            return None
        if self._failures:
            log.info("store rounds work again after %d failure(s)", self._failures)
            self._failures = 0
        return r

    def _after(self, r: Round, full: bool, now_m: float, now: float) -> None:
        if full:
            self._last_full = now_m
        self._next_due, self._paused = r.next_due, r.paused
        if r.retry_in is not None:  # a rate limit: look again when a token is due
            again = now + max(0.001, r.retry_in)
            self._next_due = again if self._next_due is None else min(self._next_due, again)

    def _trim_began(self) -> None:
        """Empty the began log now and then, at a moment no held job is in flight here:
        only this thread hands held jobs out, so none can be written meanwhile."""
        self._rounds += 1
        if self.began_path is None or self._rounds % 256 or self.inflight.held_live:
            return
        if began.appended(self.began_path) > BEGAN_LOG_MAX:
            began.truncate(self.began_path)

    def _ring_others(self) -> None:
        """A gathered child ended here: its parent, if that was its last child, may run on
        another service (another queue, another host's tasks), asleep until its poll."""
        if self._ringer is None:
            self._ringer = presence_for(self.store).ringer()
        self._ringer.ring()

    def _dispatch(self, claims: list[Claim]) -> None:
        """A round's claims to their executors (the path of every job: names kept local)."""
        inflight, pools, path, beat = self.inflight, self.pools, self.path, self._heartbeat
        log_args = self._settings().log_args if jlog.isEnabledFor(logging.INFO) else None
        for claim in claims:
            older = inflight.older_attempt(claim.id)
            if older is not None:
                self._again(claim, older)
                continue
            ctx = Context(claim.id, claim.attempt, claim.task, claim.trace_id, claim.queue,
                          claim.token, beat, path)
            kind = pools.kind(claim)
            inflight.add(claim, ctx, kind)
            if claim.held:
                # Claimed in the round that met the drain: back. Read after `add`, each time:
                # a drain sets it, then withdraws what it finds in flight (Service.stop).
                if self.draining:
                    self.done(claim, Outcome(claim.id, claim.token, "released",
                                             extra={"unstarted": True}))
                    continue
            elif log_args is not None:  # a held one is logged as it begins
                log_started(claim, log_args)
            try:
                pools.submit(claim, ctx, kind)
            except Exception as exc:  # an executor that cannot start fails the job
                log.exception("cannot start job %s", claim.id)
                self.done(claim, after_failure(claim, exc, clock.now()))

    def _again(self, claim: Claim, older: int) -> None:
        """Taken back from us (our liveness was lost) and claimed again while its earlier
        attempt (`older`, its token) still runs here: handed back, and no claims until that
        attempt ends."""
        self.inflight.taken_back(older)
        log.warning("job %s %s claimed again while its earlier attempt still runs here "
                    "(this service lost its liveness): handed back, and no claims until "
                    "that attempt ends", claim.id, claim.task)
        self.done(claim, Outcome(claim.id, claim.token, "released"))

    def _heartbeat(self, job_id: int, token: int) -> bool:
        return self.store.extend_lease(job_id, token, now=clock.now(),
                                       lease=self._settings().lease)

    def _wait(self) -> None:
        timeout = self._settings().poll
        if self._next_due is not None:
            timeout = min(timeout, max(0.0, self._next_due - clock.now()))
        if self._hold_until is not None:
            timeout = min(timeout, max(0.0, self._hold_until - clock.monotonic()))
        self._sleeping = True
        if self.outcomes or self.halting:
            self._rung = False
        else:
            self._rung = self.bell.wait(timeout)
        self._sleeping = False
