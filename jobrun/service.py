"""The service: claim -> run -> record, leases, rescue of dead holders, drain.

One loop thread talks to the store: each round records the outcomes that came in, promotes
due jobs and claims as many jobs as there are free slots, all in one transaction (batching
is the lever). Executors run the claims and hand outcomes back. A maintenance thread, with a
connection of its own, renews leases and takes back the jobs of dead holders.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import deque
from datetime import datetime
from typing import Any

from . import catalog, clock
from .bell import Bell
from .config import CronEntry, Settings
from .context import Context
from .errors import StoreError
from .lock import HolderLock, holder_info, new_holder_id
from .maintenance import Maintenance
from .model import Claim
from .pools import Pools, register_commands
from .registry import REGISTRY, Registry
from .scheduler import Scheduler, task_of
from .store.base import Outcome
from .store.sqlite import SqliteStore
from .worker import decide, log_outcome

log = logging.getLogger("jobrun.service")
KILL_WAIT = 8.0  # a drain waits this long for stopped child processes to be gone
THREAD_GRACE = 1.0  # and this long for thread jobs told to stop to return
jlog = logging.getLogger("jobrun.job")


class Service:
    """Workers for the queues of one store, in threads of this process."""

    def __init__(self, store_path: str, settings: Settings | None = None,
                 registry: Registry = REGISTRY, *, holder: str | None = None) -> None:
        self.settings = settings or Settings()
        self.registry = registry
        self.store = SqliteStore(store_path, durability=self.settings.durability)
        self.path = self.store.path
        self.holder = holder or new_holder_id()
        self._holder_lock = HolderLock(self.path, self.holder)
        self._bell: Bell | None = None
        self._outcomes: deque[tuple[Claim, Outcome]] = deque()
        # In-flight attempts by fencing token: after a thread timeout, the same job's next
        # attempt may run here while the old thread still does.
        self._inflight: dict[int, tuple[Claim, Context]] = {}
        self._started: dict[int, tuple[float, str]] = {}
        self._timed_out: set[int] = set()
        self._limits: Any = None
        self._maint = Maintenance(self)
        self._status: SqliteStore | None = None
        self.metrics: Any = None
        self._limited: frozenset[str] = frozenset()
        self._busy: dict[str, int] = {}
        self._caps: dict[str, int] = {}  # jobs a queue may hold here (its claim cap)
        self._chunks: dict[str, tuple[int, int]] = {}
        self._pools = Pools(registry, self._done, lambda: self.settings, self.path)
        self._sleeping = False
        self._draining = False
        self._halting = False
        self._threads: list[threading.Thread] = []
        self._stop_maint = threading.Event()
        self.scheduler: Scheduler | None = None
        self._producer: Any = None
        self.started = threading.Event()
        self.healthy_at = clock.monotonic()
        self.rescued = 0
        self.tasks: frozenset[str] = frozenset()  # what this service runs (and claims)

    # -- lifecycle -------------------------------------------------------------------------
    def queue_names(self) -> list[str]:
        """Queues served: the config's, the registered tasks', and `default`."""
        names = set(self.settings.queues) | {"default"}
        for name in self.registry.names():
            spec = self.registry.find(name)
            if spec is not None and spec.queue:
                names.add(spec.queue)
        for t in self.settings.tasks.values():
            if t.queue:
                names.add(t.queue)
        return sorted(names)

    def start(self) -> None:
        self._holder_lock.info = {
            "host": socket.gethostname(),
            "queues": {q: self.settings.queue(q).concurrency for q in self.queue_names()}}
        if not self._holder_lock.acquire():
            raise StoreError(f"holder lock {self._holder_lock.path} is taken")
        self._bell = Bell(self.path, self.holder)
        register_commands(self.settings, self.registry)
        self._publish(self.settings)
        for q in self.queue_names():
            self._caps[q] = self.settings.queue(q).claim_cap
            self._busy[q] = 0
        self._set_chunks()
        self._build_limits()  # before the loop's first round: limits hold from the start
        from .app import App

        self._producer = App(self.path, settings=self.settings)
        self._producer.store  # opened now, not inside the scheduler's transaction
        listen = self.settings.metrics.get("listen")
        if listen:  # before the first round, so every outcome is counted
            from .metrics import Metrics

            try:
                self.metrics = Metrics(self.path, listen)
                self.metrics.start()
            except OSError as exc:
                log.error("metrics endpoint %s not started: %s", listen, exc)
                self.metrics = None
        self.scheduler = Scheduler(self.path, lambda: self.settings, self._cron_enqueue,
                                   self.holder)
        self._maint.once(first=True)
        for target, name in ((self._loop, "jobrun-loop"), (self._maint.run, "jobrun-maint")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self.scheduler.start()
        self.started.set()
        log.info("service %s serving %s on %s", self.holder,
                 ", ".join(f"{q}({c})" for q, c in self._caps.items()), self.path)

    def stop(self, timeout: float | None = None) -> int:
        """Drain: no new claims, wait for in-flight jobs up to `timeout`, hand back the rest
        as queued without counting their attempt. Returns how many were handed back."""
        if not self.started.is_set():
            return 0
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        self._draining = True
        self._wake()
        deadline = clock.monotonic() + max(0.0, timeout)
        while self._inflight and clock.monotonic() < deadline:
            time.sleep(0.01)
        # Past the deadline: process and command attempts are stopped (their whole group)
        # and come back as handed back before anything is recorded; a job must never run
        # here and elsewhere at once. Threads cannot be stopped: see the README.
        stoppable = []
        for token, (claim, ctx) in list(self._inflight.items()):
            ctx.cancel(hand_back=True)  # `stopping`: whatever it does now, it is handed back
            if self._started.get(token, (0.0, ""))[1] in ("process", "command"):
                stoppable.append(token)
        # Process and command jobs are being stopped (their whole group); cooperative thread
        # jobs get a moment to return. Either way they come back as handed back.
        now_m = clock.monotonic()
        kill_deadline, thread_deadline = now_m + KILL_WAIT, now_m + THREAD_GRACE
        while self._inflight and clock.monotonic() < kill_deadline:
            if clock.monotonic() >= thread_deadline and \
                    not any(t in self._inflight for t in stoppable):
                break
            time.sleep(0.01)
        self._halting = True
        self._wake()
        self._stop_maint.set()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.metrics is not None:
            self.metrics.stop()
        for t in self._threads:
            t.join(timeout=10)
        # What finished after the loop's last round, then what did not finish at all.
        late = self._take_outcomes()
        left = list(self._inflight.values())
        for claim, ctx in left:
            late.append((claim, Outcome(claim.id, claim.token, "released")))
        if late:
            try:
                applied = self.store.record_outcomes([o for _, o in late], now=clock.now())
                self._recorded(late, applied)
            except StoreError as exc:
                log.error("could not record the drain: %s (jobs will be rescued)", exc)
        try:
            self.store.touch_catalog(self.holder, now=clock.now())
        except StoreError as exc:
            log.error("could not record this service's stop in the catalog: %s", exc)
        self._inflight.clear()
        self._pools.shutdown()
        self._holder_lock.release(unlink=True)
        if self._bell is not None:
            self._bell.close()
        self.store.close()
        if self._status is not None:
            self._status.close()
        self.started.clear()
        log.info("service %s stopped; %d job(s) handed back", self.holder, len(left))
        return len(left)

    def _publish(self, settings: Settings) -> None:
        """Claim only what this service runs, and say so in the store's catalog: by-name
        producers resolve against it, and other services leave these jobs to this one."""
        specs = [spec for name in self.registry.names()
                 if (spec := self.registry.find(name)) is not None]
        self.tasks = frozenset(spec.name for spec in specs)
        self.store.publish_catalog(self.holder, catalog.entries(specs, settings),
                                   now=clock.now())

    def _set_chunks(self) -> None:
        """Prefetching queues claim in chunks (half the prefetch) while every child is busy:
        one store round per job would cost more than the jobs."""
        chunks = {}
        for q in self._caps:
            qc = self.settings.queue(q)
            if qc.claim_cap > qc.concurrency:
                chunks[q] = (qc.concurrency, max(1, (qc.claim_cap - qc.concurrency) // 2))
        self._chunks = chunks

    def _build_limits(self) -> None:
        """Caps, rates and key limits from the config and the registered tasks."""
        from .limits import Limits, parse_rate

        queue_rates = {}
        for q, qc in self.settings.queues.items():
            if qc.extra.get("rate_limit"):
                queue_rates[q] = parse_rate(qc.extra["rate_limit"])
        task_rates, key_conc, key_rates = {}, {}, {}
        by_queue: dict[str, set[str]] = {}
        for name in self.registry.names():
            spec = self.registry.find(name)
            if spec is None:
                continue
            by_queue.setdefault(spec.queue or "default", set()).add(name)
            if spec.extra.get("rate_limit"):
                task_rates[name] = parse_rate(spec.extra["rate_limit"])
            if spec.extra.get("key_concurrency"):
                key_conc[name] = int(spec.extra["key_concurrency"])
            if spec.extra.get("key_rate_limit"):
                key_rates[name] = parse_rate(spec.extra["key_rate_limit"])
        limits = Limits(dict(self._caps), queue_rates, task_rates, key_conc, key_rates)
        if task_rates or key_conc or key_rates:
            # A job may be sent to any queue, and keeps its task's limits there.
            self._limited = frozenset(self._caps)
        else:
            self._limited = frozenset(q for q in self._caps if limits.limited(q, by_queue))
        self._limits = limits

    def apply(self, settings: Settings) -> None:
        """Switch to new settings at once: caps and new queues; the scheduler reads them on
        its next round. Jobs in flight are untouched."""
        register_commands(settings, self.registry)
        self._publish(settings)
        self.settings = settings
        caps = dict(self._caps)
        for q in self.queue_names():
            self._busy.setdefault(q, 0)
            caps[q] = settings.queue(q).claim_cap
        self._pools.resize(caps)
        self._caps = caps  # one assignment: the loop sees the old caps or the new ones
        self._set_chunks()
        self._build_limits()
        if self.scheduler is not None:
            self.scheduler.settings_changed(clock.now())
        info = {"holder": self.holder, "pid": os.getpid(),  # a reload keeps the uptime
                "started": holder_info(self.path, self.holder).get("started", time.time()),
                **self._holder_lock.info, "queues": dict(caps)}
        self._holder_lock.info = info
        self._holder_lock.write(json.dumps(info))
        self._wake()

    # -- the loop ------------------------------------------------------------------------
    def _done(self, claim: Claim, outcome: Outcome) -> None:
        """Called by executors from their threads."""
        self._outcomes.append((claim, outcome))
        if self._sleeping:
            self._sleeping = False
            self._wake()

    def _wake(self) -> None:
        if self._bell is not None:
            self._bell.wake()

    def _take_outcomes(self) -> list[tuple[Claim, Outcome]]:
        out = []
        pop = self._outcomes.popleft
        while self._outcomes:
            claim, o = pop()
            entry = self._inflight.pop(claim.token, None)
            if entry is not None:
                self._busy[claim.queue] -= 1
            self._started.pop(claim.token, None)
            if claim.token in self._timed_out:
                self._timed_out.discard(claim.token)  # recorded at its timeout: discarded
                jlog.warning("job %s %s returned after its timeout: result discarded",
                             claim.id, claim.task)
                continue
            if entry is not None and entry[1].stopping and o.state != "released":
                # Told to stop by a drain: whatever it returned or raised, its work did not
                # finish before the drain ended. It is handed back, attempt not counted.
                o = Outcome(claim.id, claim.token, "released", extra=o.extra)
            out.append((claim, o))
        return out

    def _recorded(self, taken: list[tuple[Claim, Outcome]], applied: frozenset[int]) -> None:
        """Log and count outcomes once the store has them: an outcome whose lease was taken
        back (the job cancelled or rescued meanwhile) is discarded, and said so."""
        for claim, o in taken:
            if o.token in applied:
                if o.state == "released":
                    jlog.warning("job %s %s handed back: the service is stopping (attempt "
                                 "not counted)", claim.id, claim.task, extra={"jobrun": {
                                     "event": "released", "job_id": claim.id,
                                     "task": claim.task, "queue": claim.queue,
                                     "attempt": claim.attempt}})
                else:
                    log_outcome(claim, o)
                state = o.state
            else:
                try:
                    rec = self.store.get(claim.id)
                except StoreError:
                    rec = None
                state = "cancelled" if rec is not None and rec.state == "cancelled" \
                    else "discarded"
                why = "it was cancelled" if state == "cancelled" else "it was taken back"
                jlog.warning("job %s %s %s: result discarded (%s while running)", claim.id,
                             claim.task, state, why,
                             extra={"jobrun": {"event": state, "job_id": claim.id,
                                               "task": claim.task, "queue": claim.queue,
                                               "attempt": claim.attempt,
                                               "returned": o.state}})
            if self.metrics is not None:
                self.metrics.observe(claim.queue, claim.task, state, o.extra.get("duration"))

    def _loop(self) -> None:
        assert self._bell is not None
        bell, store = self._bell, self.store
        poll = self.settings.poll
        lease = self.settings.lease
        next_due: float | None = None
        paused: frozenset[str] = frozenset()
        rung = True
        last_full = -poll
        pending: list[tuple[Claim, Outcome]] = []
        failures, last_report = 0, 0.0
        while True:
            taken = self._take_outcomes()
            if taken:
                pending.extend(taken)
            halting = self._halting
            wants: dict[str, int] = {}
            if not self._draining:
                chunks = self._chunks
                for q, cap in self._caps.items():
                    busy = self._busy[q]
                    free = cap - busy
                    if free > 0:
                        chunk = chunks.get(q)
                        if chunk is not None and busy >= chunk[0] and free < chunk[1]:
                            continue  # children all busy and a backlog left: claim later
                        wants[q] = free
            now_m = clock.monotonic()
            now = clock.now()
            for _, o in pending:
                if o.state == "retrying" and o.run_at is not None and \
                        (next_due is None or o.run_at < next_due):
                    next_due = o.run_at
            due = next_due is not None and next_due <= now
            full = rung or due or now_m - last_full >= poll
            if pending or (wants and full):
                try:
                    tick = store.tick([o for _, o in pending], wants, self.holder, now=now, lease=lease,
                                      full=full, paused=paused, next_due=next_due,
                                      limits=self._limits, limited=self._limited,
                                      tasks=self.tasks)
                except Exception as exc:  # the loop must outlive any one bad round
                    failures += 1
                    if clock.monotonic() - last_report >= 10 or failures == 1:
                        last_report = clock.monotonic()  # once per 10 s while it lasts
                        more = f" ({failures} rounds so far)" if failures > 1 else ""
                        if isinstance(exc, StoreError):
                            log.error("store round failed, retrying every 0.5s%s: %s", more,
                                      exc)
                        else:
                            log.exception("store round failed, retrying every 0.5s%s", more)
                    if halting:
                        return
                    time.sleep(0.5)
                    continue
                if failures:
                    log.info("store rounds work again after %d failure(s)", failures)
                    failures = 0
                self._recorded(pending, tick.applied)
                pending = []
                if full:
                    last_full = now_m
                next_due, paused = tick.next_due, tick.paused
                if tick.retry_in is not None:  # a rate limit: look again when a token is due
                    again = now + max(0.001, tick.retry_in)
                    next_due = again if next_due is None else min(next_due, again)
                for claim in tick.claims:
                    ctx = Context(claim.id, claim.attempt, claim.task, claim.trace_id,
                                  claim.queue, claim.token, self._heartbeat_for(claim),
                                  self.path)
                    self._inflight[claim.token] = (claim, ctx)
                    self._busy[claim.queue] += 1
                    if jlog.isEnabledFor(logging.INFO):
                        self._log_started(claim)
                    kind = self._pools.kind(claim)
                    self._started[claim.token] = (clock.monotonic(), kind)
                    try:
                        self._pools.submit(claim, ctx, kind)
                    except Exception as exc:  # an executor that cannot start fails the job
                        log.exception("cannot start job %s", claim.id)
                        self._done(claim, decide(claim, exc, clock.now()))
            self.healthy_at = clock.monotonic()
            if halting:
                return
            timeout = poll
            if next_due is not None:
                timeout = min(timeout, max(0.0, next_due - clock.now()))
            self._sleeping = True
            if self._outcomes or self._halting:
                rung = False
            else:
                rung = bell.wait(timeout)
            self._sleeping = False

    def _log_started(self, claim: Claim) -> None:
        fields: dict[str, Any] = {"event": "started", "job_id": claim.id, "task": claim.task,
                                  "queue": claim.queue, "attempt": claim.attempt,
                                  "trace_id": claim.trace_id}
        if self.settings.log_args:
            fields["args"], fields["kwargs"] = claim.args, claim.kwargs
        jlog.info("job %s %s started (attempt %s)", claim.id, claim.task, claim.attempt,
                  extra={"jobrun": fields})

    def _cron_enqueue(self, conn: Any, entry: CronEntry, fire: datetime) -> int:
        """A cron fire's job, inside the scheduler's transaction (with its fire row)."""
        job = self._producer.enqueue(task_of(entry), args=list(entry.args),
                                     kwargs=dict(entry.kwargs), queue=entry.queue,
                                     priority=entry.priority, run_at=fire, connection=conn)
        return int(job.id)

    def _heartbeat_for(self, claim: Claim) -> Any:
        def beat() -> bool:
            return self.store.extend_job(claim.id, claim.token, now=clock.now(),
                                         lease=self.settings.lease)
        return beat

    # -- maintenance ---------------------------------------------------------------------
    # -- introspection -------------------------------------------------------------------
    def healthy(self, stale: float = 10.0) -> bool:
        """Whether the loop, maintenance and scheduler threads all made progress lately."""
        now = clock.monotonic()
        limit = max(stale, 3 * self.settings.poll)
        sched = self.scheduler
        return (now - self.healthy_at < limit and now - self._maint.ran_at < limit and
                (sched is None or now - sched.ran_at < limit))

    def status_line(self) -> str:
        """For systemd's STATUS=: "12 queued, oldest 3s, 4 running, leader"."""
        from .stats import queue_stats

        try:
            data = queue_stats(self._status_store(), now=clock.now())
        except StoreError as exc:
            return f"store error: {exc}"
        queued = sum(v["queued"] for v in data.values())
        oldest = max((v["oldest_queued_age"] for v in data.values()), default=0.0)
        lead = ", leader" if self.scheduler is not None and self.scheduler.leader else ""
        return f"{queued} queued, oldest {oldest:.0f}s, {self.inflight()} running{lead}"

    def _status_store(self) -> SqliteStore:
        if self._status is None:
            self._status = SqliteStore(self.path, readonly=True)
        return self._status

    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def pid(self) -> int:
        return os.getpid()
