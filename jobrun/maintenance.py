"""Maintenance: what a service does once or twice a second beside its loop.

It takes back the jobs of dead holders (within a second of the death, by their free lock)
and of expired leases (a holder alive but stuck), renews this service's leases, tells
attempts whose job was cancelled or taken back, times out thread jobs, prunes old jobs, and
(on the leader) checks the alert thresholds. It has its own store connection (its thread's).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import catalog, clock
from .alerts import Alerter
from .errors import StoreError, TaskTimeout
from .lock import holder_alive, live_holders
from .worker import decide

if TYPE_CHECKING:
    from .service import Service

log = logging.getLogger("jobrun.service")
jlog = logging.getLogger("jobrun.job")
UNKNOWN_EVERY = 5.0  # seconds between sweeps for jobs of tasks nobody runs


class Maintenance:
    def __init__(self, service: Service) -> None:
        self.s = service
        self._last_extend = 0.0
        self._last_sweep = 0.0
        self._last_prune = 0.0
        self._last_alert = 0.0
        self._last_unknown = 0.0
        self._alerter = Alerter()
        self.ran_at = clock.monotonic()

    def run(self) -> None:
        interval = min(0.5, self.s.settings.poll)
        while not self.s._stop_maint.wait(interval):
            try:
                self.once()
            except StoreError as exc:
                log.error("maintenance round failed: %s", exc)
            except Exception:  # keep the service alive; the next round tries again
                log.exception("maintenance round failed")

    def once(self, first: bool = False) -> None:
        self.ran_at = clock.monotonic()
        now_m = clock.monotonic()
        now = clock.now()
        store = self.s.store
        # Jobs of dead holders come back (attempt counted): within a second of the death.
        for h in store.running_holders():
            if h != self.s.holder and not holder_alive(self.s.path, h):
                self._rescue(store.rescue_holder(h, f"worker lost: service process {h} died", now=now))
        for job_id, h in store.expired_leases(now=now):
            if h != self.s.holder:
                self._rescue(store.rescue_expired(
                    job_id, f"worker lost: lease of {h} expired (alive but stuck?)", now=now))
        if first or now_m - self._last_extend >= self.s.settings.lease / 3:
            self._last_extend = now_m
            if self.s._inflight:
                store.extend_leases(self.s.holder, now=now, lease=self.s.settings.lease)
        if self.s._inflight:
            self._check_fenced()
            self._check_thread_timeouts()
        if first or now_m - self._last_unknown >= UNKNOWN_EVERY:
            self._last_unknown = now_m
            self._sweep_unknown(now)
        if first or now_m - self._last_sweep >= 10:
            self._last_sweep = now_m
            for h in live_holders(self.s.path):
                if h != self.s.holder:
                    holder_alive(self.s.path, h)  # removes the files of dead holders
        if self.s.settings.alerts and now_m - self._last_alert >= 10 and \
                self.s.scheduler is not None and self.s.scheduler.leader:
            self._last_alert = now_m  # one service (the leader) alerts for the host
            from .stats import queue_stats

            self._alerter.update(self.s.settings.alerts, queue_stats(store, now=now))
        if now_m - self._last_prune >= 60:
            self._last_prune = now_m
            if not first:
                self._prune(now)

    def _sweep_unknown(self, now: float) -> None:
        """Queued jobs of a task that no live or recent service declares (a typo stored with
        allow_unknown, an old deploy, a hostile row) go dead with UnknownTask. Jobs of tasks
        another live service runs are its own: they wait for it."""
        store, path, me = self.s.store, self.s.path, self.s.holder
        pairs = [(q, t) for q, t in store.queued_pairs() if t not in self.s.tasks]
        if not pairs:
            return
        decls: dict[str, list[tuple[str, float]]] = {}
        for task, holder, _options, seen in store.catalog():
            decls.setdefault(task, []).append((holder, seen))
        alive: dict[str, bool] = {}

        def is_alive(holder: str) -> bool:
            if holder not in alive:
                alive[holder] = holder == me or holder_alive(path, holder)
            return alive[holder]

        for queue, task in pairs:
            if catalog.recent(decls.get(task, []), is_alive, now):
                continue
            msg = (f"task {task!r} is not run by any live or recent service of this store "
                   "(a typo, an old deploy, or a module missing from `import`?)")
            while True:
                ids = store.dead_unknown(queue, task, msg, now=now)
                for job_id in ids:
                    jlog.warning("job %s %s dead: UnknownTask: %s", job_id, task, msg,
                                 extra={"jobrun": {"event": "dead", "job_id": job_id,
                                                   "task": task, "queue": queue}})
                if len(ids) < 500:
                    break
        old = {h for ds in decls.values() for h, seen in ds if seen < now - catalog.RECENT}
        for holder in old:  # declarations of long-dead services are forgotten
            if not is_alive(holder):
                store.forget_catalog(holder, before=now - catalog.RECENT)

    def _rescue(self, rows: list[tuple[Any, ...]]) -> None:
        for job_id, task, queue, attempts, state in rows:
            self.s.rescued += 1
            jlog.warning("job %s %s rescued after its holder was lost: now %s (attempt %s "
                         "counted)", job_id, task, state, attempts,
                         extra={"jobrun": {"event": "rescued", "job_id": job_id, "task": task,
                                           "queue": queue, "attempt": attempts,
                                           "outcome": state}})
        if rows:
            self.s._wake()

    def _check_fenced(self) -> None:
        """Tell attempts whose job was cancelled or taken back (their result is discarded)."""
        inflight = list(self.s._inflight.values())
        if not inflight:
            return
        seen = self.s.store.attempt_states(sorted({c.id for c, _ in inflight}))
        for claim, ctx in inflight:
            job_id = claim.id
            r = seen.get(job_id)
            if r is None or r[0] != "running" or r[1] != claim.token:
                if claim.token not in self.s._inflight:
                    continue  # it finished while we looked: its own outcome said so
                if not ctx.cancelled:
                    ctx.cancel()
                    what = "cancelled" if r is not None and r[0] == "cancelled" else "taken back"
                    jlog.warning("job %s %s %s while running: asked to stop", job_id,
                                 claim.task, what, extra={"jobrun": {
                                     "event": "cancelled" if what == "cancelled" else "fenced",
                                     "job_id": job_id, "task": claim.task,
                                     "queue": claim.queue, "attempt": claim.attempt}})
                    self.s._pools.cancel(job_id)

    def _check_thread_timeouts(self) -> None:
        """A thread cannot be killed: record its attempt as timed out now (it retries as any
        failure), keep its slot counted until it returns, and discard its late result."""
        now_m = clock.monotonic()
        for token, (claim, ctx) in list(self.s._inflight.items()):
            started = self.s._started.get(token)
            if started is None or started[1] != "thread" or not claim.timeout or \
                    token in self.s._timed_out or now_m - started[0] < claim.timeout:
                continue
            self.s._timed_out.add(token)
            ctx.cancel()
            outcome = decide(claim, TaskTimeout(
                f"timed out after {claim.timeout:g}s (a thread cannot be stopped: its slot "
                "stays taken until it returns)"), clock.now())
            self.s.store.record([outcome], now=clock.now())
            jlog.warning("job %s %s timed out after %gs in a thread; it keeps its slot until "
                         "it returns", claim.id, claim.task, claim.timeout,
                         extra={"jobrun": {"event": "timeout", "job_id": claim.id,
                                           "task": claim.task, "queue": claim.queue,
                                           "attempt": claim.attempt}})
            if outcome.state == "retrying":
                self.s._wake()

    def _prune(self, now: float) -> None:
        s = self.s.settings
        n = self.s.store.prune(now - s.retention, ("succeeded", "cancelled"))
        n += self.s.store.prune(now - s.dead_retention, ("dead",))
        if n:
            log.info("pruned %d finished job(s) older than %ss", n, s.retention)
