"""The service: one process's workers, scheduler and maintenance on one store, wired.

`start` takes this process's liveness lock, publishes the tasks it runs in the store's
catalog, then starts the loop (worker/loop.py: acquire, dispatch, wait), maintenance
(worker/maintenance/: rescue, leases, ...) and the cron scheduler. `stop` drains: no new
claims, in-flight jobs get `timeout` seconds, then every attempt still running is told to
stop (`context().stopping`) and handed back to `queued`, its attempt not counted. `apply`
switches to a reloaded config.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import began, catalog, clock, enqueue
from .config import CronEntry, Settings
from .errors import StoreError
from .executors.pools import Pools, register_commands
from .limits import Limits, parse_rate
from .lock import new_holder_id
from .model import NewJob, Outcome
from .presence import presence_for
from .registry import REGISTRY, Registry
from .scheduler import Scheduler, task_of
from .store import open_store
from .store.contract import Store
from .worker import outcomes
from .worker.inflight import InFlight
from .worker.loop import ClaimPlan, Loop, log_started
from .worker.maintenance import Maintenance, ServiceView

if TYPE_CHECKING:
    from .ops.metrics import Metrics

log = logging.getLogger("jobrun.service")
jlog = logging.getLogger("jobrun.job")
KILL_WAIT = 8.0  # a drain waits this long for stopped child processes to be gone
THREAD_GRACE = 1.0  # and this long for thread jobs told to stop to return


class Service:
    """Workers for the queues of one store, in threads of this process."""

    def __init__(self, store_path: str, settings: Settings | None = None,
                 registry: Registry = REGISTRY, *, holder: str | None = None) -> None:
        self.settings = settings or Settings()
        self._configured = self.settings       # the config, before queues scaled live
        self._scaled: dict[str, int] = {}      # queue -> concurrency set in the store
        self._applying = threading.RLock()     # reload and the live scale both apply
        self._scale_read = threading.Event()   # the live-scale thread's first read is done
        self.registry = registry
        self.store: Store = open_store(store_path, durability=self.settings.durability,
                                       adopt=False)
        self.path = self.store.path
        self.holder = holder or new_holder_id()
        self.presence = presence_for(self.store)
        self._liveness = self.presence.liveness(self.holder)
        self._inflight = InFlight()
        self._began_path = self.presence.began_path(self.holder)  # held jobs begun
        self._ring = True  # its threads write their starts into the log's ring (began.py)
        self._pools = Pools(registry, self._done, lambda: self.settings, self.path,
                            self._begin, began_path=self._began_path)
        self._loop: Loop | None = None
        self._maint = Maintenance(ServiceView(
            self.store, self.path, self.holder, self._inflight, lambda: self.settings,
            lambda: self.tasks, self._wake, self._pools.cancel, self._leads,
            self.presence, self._liveness, self._served_alone))
        self._status: Store | None = None
        self.metrics: Metrics | None = None
        self._threads: list[threading.Thread] = []
        self.scheduler: Scheduler | None = None
        self._cron_catalog = catalog.CatalogView(self.store.catalog, self.store.catalog_born)
        self.started = threading.Event()
        self.tasks: frozenset[str] = frozenset()  # what this service runs (and claims)
        self.handed_back = 0  # jobs handed back (released) by this service's drains

    # -- lifecycle -------------------------------------------------------------------------
    def queue_names(self, settings: Settings | None = None) -> list[str]:
        """Queues served: the config's, the registered tasks', and `default`."""
        settings = settings or self.settings
        names = set(settings.queues) | {"default"}
        for name in self.registry.names():
            spec = self.registry.find(name)
            if spec is not None and spec.queue:
                names.add(spec.queue)
        for t in settings.tasks.values():
            if t.queue:
                names.add(t.queue)
        return sorted(names)

    def _effective(self, settings: Settings) -> Settings:
        """The config with the served queues an operator scaled live (`jobrun top`) at the
        concurrency set in the store; a queue not served stays unserved."""
        served = set(self.queue_names(settings))
        scaled = {q: n for q, n in self._scaled.items() if q in served}
        if not scaled:
            return settings
        queues = dict(settings.queues)
        for q, n in scaled.items():
            queues[q] = replace(settings.queue(q), concurrency=n)
        return replace(settings, queues=queues)

    def _follow_scale(self) -> None:
        """Apply the queues' live concurrency from the store (set by `jobrun top`), read
        once a poll as the paused flags are read each round. `start` waits for the first
        read, so this thread's connection is open before the service says it serves."""
        while True:
            try:
                scaled = self.store.concurrency()
            except StoreError as exc:
                log.warning("could not read the queues' live concurrency: %s", exc)
                scaled = self._scaled
            self._scale_read.set()
            if scaled != self._scaled:
                self._scaled = scaled
                self.apply(self._configured)
                log.info("live concurrency applied: %s", self._concurrency_line())
            if self.wait(max(1.0, self.settings.poll)):
                return

    def _concurrency_line(self) -> str:
        """Every served queue's concurrency now and where it comes from: `default 7 (live),
        mail 3 (the config's)`, so a reset says the number the service went back to."""
        said = []
        for q in sorted(self.queue_names(self._configured)):
            where = "live" if q in self._scaled else "the config's"
            said.append(f"{q} {self.settings.queue(q).concurrency} ({where})")
        return ", ".join(said)

    def start(self) -> None:
        try:
            self._scaled = self.store.concurrency()
        except StoreError as exc:
            log.warning("could not read the queues' live concurrency: %s", exc)
        self.settings = self._effective(self._configured)
        self._liveness = self.presence.liveness(self.holder, {
            "host": socket.gethostname(),
            "queues": {q: self.settings.queue(q).concurrency for q in self.queue_names()},
            "configured": {q: self._configured.queue(q).concurrency
                           for q in self.queue_names()},
            "lease": self.settings.lease})  # a console without this config times beats by it
        self._maint.view.liveness = self._liveness
        if not self._liveness.acquire():
            raise StoreError(f"store {self.path}: holder {self.holder}'s liveness is taken")
        bell = self.presence.bell(self.holder)
        register_commands(self.settings, self.registry)
        self._publish(self.settings)
        self._loop = Loop(self.store, self.holder, self.path, lambda: self.settings, bell,
                          self._pools, self._inflight, self._observe)
        self._loop.plan = self._plan(self.settings)  # limits hold from the first round
        self._loop.began_path = self._began_path
        if self._began_path is not None:
            began.open_log(self._began_path)
        listen = self.settings.metrics.get("listen")
        if listen:  # before the first round, so every outcome is counted
            from .ops.metrics import Metrics

            try:
                self.metrics = Metrics(self.path, listen)
                self.metrics.start()
            except OSError as exc:
                log.error("metrics endpoint %s not started: %s", listen, exc)
                self.metrics = None
        self.scheduler = Scheduler(open_store(self.path, durability=self.settings.durability,
                                              adopt=False),
                                   lambda: self.settings, self._cron_job, self.holder)
        self._maint.once(first=True)
        for target, name in ((self._loop.run, "jobrun-loop"), (self._maint.run, "jobrun-maint"),
                             (self._follow_scale, "jobrun-scale")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self.scheduler.start()
        self._scale_read.wait(10)
        self.started.set()
        log.info("service %s serving %s on %s", self.holder,
                 ", ".join(f"{q}({c})" for q, c in self._loop.plan.caps.items()), self.path)

    def stop(self, timeout: float | None = None) -> int:
        """Drain: no new claims, wait for in-flight jobs up to `timeout`, then hand back the
        rest as queued without counting their attempt. Returns how many were handed back."""
        loop = self._loop
        if not self.started.is_set() or loop is None:
            return 0
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        loop.draining = True
        for a in self._inflight.waiting():  # held, not begun: back now, not after a wait
            a.ctx.withdraw()
        self._pools.withdraw()
        self._wake()
        if self.scheduler is not None:  # a draining service fires no cron: another leads now
            self.scheduler.stop()
            self.scheduler.store.close()
        deadline = clock.monotonic() + max(0.0, timeout)
        while len(self._inflight) and clock.monotonic() < deadline:
            time.sleep(0.01)
        self._stop_attempts()
        loop.halting = True
        self._wake()
        self._maint.stop()
        if self.metrics is not None:
            self.metrics.stop()
        for t in self._threads:
            t.join(timeout=10)
        # What finished after the loop's last round, then what did not finish at all.
        late = loop.outcomes.take()
        left = self._inflight.attempts()
        late += [(a.claim, Outcome(a.claim.id, a.claim.token, "released", extra={
            "unstarted": True} if a.claim.held and not a.begun else {})) for a in left]
        if late:
            try:
                applied = self.store.record_outcomes([o for _, o in late], now=clock.now())
                outcomes.report(self.store, late, applied, self._observe)
            except StoreError as exc:
                log.error("could not record the drain: %s (jobs will be rescued)", exc)
        try:
            self.store.touch_catalog(self.holder, now=clock.now())
        except StoreError as exc:
            log.error("could not record this service's stop in the catalog: %s", exc)
        self._inflight.clear()
        self._pools.shutdown()
        if self._began_path is not None:  # nothing held is left to rescue
            began.close(self._began_path, unlink=True)
        self._liveness.release()
        loop.bell.close()
        self.store.close()
        if self._status is not None:
            self._status.close()
        self.started.clear()
        log.info("service %s stopped; %d job(s) handed back", self.holder, self.handed_back)
        return self.handed_back

    def _stop_attempts(self) -> None:
        """Past the drain's deadline every attempt is told to stop: process and command
        attempts are stopped (their whole group), cooperative thread jobs get a moment to
        return. Either way they come back handed back; a job must never run here and
        elsewhere at once. Threads cannot be stopped: see the README."""
        stoppable = []
        for a in self._inflight.attempts():
            a.ctx.cancel(hand_back=True)  # `stopping`: whatever it does now, it goes back
            if a.kind in ("process", "command"):
                stoppable.append(a.claim.token)
        now_m = clock.monotonic()
        kill_deadline, thread_deadline = now_m + KILL_WAIT, now_m + THREAD_GRACE
        while len(self._inflight) and clock.monotonic() < kill_deadline:
            if clock.monotonic() >= thread_deadline and \
                    not any(t in self._inflight for t in stoppable):
                break
            time.sleep(0.01)

    def _publish(self, settings: Settings) -> None:
        """Claim only what this service runs, and say so in the store's catalog: by-name
        producers resolve against it, and other services leave these jobs to this one."""
        specs = [spec for name in self.registry.names()
                 if (spec := self.registry.find(name)) is not None]
        self.tasks = frozenset(spec.name for spec in specs)
        self.store.publish_catalog(self.holder, catalog.entries(specs, settings),
                                   now=clock.now())

    def _plan(self, settings: Settings) -> ClaimPlan:
        """What the loop claims: caps (concurrency), how far ahead, limits, tasks."""
        caps = {q: settings.queue(q).concurrency for q in self.queue_names()}
        # Held by default only where a rescue can tell a held job that began from one that
        # did not (a began log: SQLite); elsewhere (PostgreSQL) only with a prefetch given,
        # whose held jobs a crash counts as begun.
        ahead = {q: (qc.ahead, qc.prefetch is not None)
                 for q in caps if (qc := settings.queue(q)).ahead > 0 and
                 (qc.prefetch is not None or self._began_path is not None)}
        self._ring = sum(most for most, _ in ahead.values()) <= began.RING_HOLDS
        queue_rates = {q: parse_rate(qc.extra["rate_limit"])
                       for q, qc in settings.queues.items() if qc.extra.get("rate_limit")}
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
        limits = Limits(dict(caps), queue_rates, task_rates, key_conc, key_rates)
        if task_rates or key_conc or key_rates:
            limited = frozenset(caps)  # a job may be sent to any queue, with its task's limits
        else:
            limited = frozenset(q for q in caps if limits.limited(q, by_queue))
        return ClaimPlan(caps, {q: a for q, a in ahead.items() if q not in queue_rates},
                         limits, limited, self.tasks)

    def apply(self, settings: Settings) -> None:
        """Switch to new settings at once: caps and new queues; the scheduler reads them on
        its next round. Jobs in flight are untouched. Queues scaled live keep their scale."""
        with self._applying:
            self._configured = settings
            self._apply(self._effective(settings))

    def _apply(self, settings: Settings) -> None:
        register_commands(settings, self.registry)
        self._publish(settings)
        self.settings = settings
        plan = self._plan(settings)
        self._pools.resize(plan.caps)
        if self._loop is not None:
            self._loop.plan = plan  # one assignment: the loop sees the old plan or the new
        if self.scheduler is not None:
            self.scheduler.settings_changed(clock.now())
        info = {"holder": self.holder, "pid": os.getpid(),  # a reload keeps the uptime
                "started": self.presence.info(self.holder).get("started", clock.now()),
                "host": socket.gethostname(), "queues": dict(plan.caps),
                "configured": {q: self._configured.queue(q).concurrency for q in plan.caps},
                "lease": self.settings.lease}
        self._liveness.publish(info)
        self._wake()

    # -- wiring ------------------------------------------------------------------------------
    def _done(self, claim: Any, outcome: Outcome) -> None:
        """Executors hand outcomes in here, from their threads."""
        if self._loop is not None:
            self._loop.done(claim, outcome)

    def _begin(self, token: int) -> None:
        """A held job begins (an executor's thread): logged before it runs, so that a
        rescue after this process's death knows it began (began.py; a process child logs
        its own jobs, before it starts them)."""
        a = self._inflight.get(token)
        if self._began_path is not None and (a is None or a.kind != "process"):
            if self._ring:
                began.begin(self._began_path, token)
            else:  # holding more than its ring keeps (a large prefetch): appended
                began.append(self._began_path, token)
        self._inflight.began(token, a)
        if a is not None and jlog.isEnabledFor(logging.INFO):
            log_started(a.claim, self.settings.log_args)

    def _served_alone(self, queues: frozenset[str]) -> None:
        if self._loop is not None:
            self._loop.alone = queues

    def _wake(self) -> None:
        if self._loop is not None:
            self._loop.wake()

    def _leads(self) -> bool:
        return self.scheduler is not None and self.scheduler.leader

    def _observe(self, queue: str, task: str, outcome: str, duration: float | None) -> None:
        if outcome == "released":
            self.handed_back += 1
        if self.metrics is not None:
            self.metrics.observe(queue, task, outcome, duration)

    def _cron_job(self, entry: CronEntry, fire: datetime) -> NewJob:
        """A cron fire's job, as an enqueue of its task would make it (the task's options,
        from this service's registry, config, or the store's catalog)."""
        task, settings = task_of(entry), self.settings
        d = catalog.resolve(self.registry.find(task), settings.tasks.get(task),
                            self._cron_catalog.lookup(task), settings, entry.queue)
        return enqueue.new_job(task, list(entry.args), dict(entry.kwargs),
                               {"priority": entry.priority, "run_at": fire}, clock.now(), d,
                               registry=self.registry)

    # -- introspection -----------------------------------------------------------------------
    @property
    def rescued(self) -> int:
        return self._maint.rescued

    @property
    def healthy_at(self) -> float:
        return self._loop.healthy_at if self._loop is not None else clock.monotonic()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, or until the service stops (for helpers that poll)."""
        return self._maint.wait(seconds)

    def healthy(self, stale: float = 10.0) -> bool:
        """Whether the loop, maintenance and scheduler threads all made progress lately."""
        now = clock.monotonic()
        limit = max(stale, 3 * self.settings.poll)
        sched = self.scheduler
        return (now - self.healthy_at < limit and now - self._maint.ran_at < limit and
                (sched is None or now - sched.ran_at < limit))

    def status_line(self) -> str:
        """For systemd's STATUS=: "12 queued, oldest 3s, 4 running, leader"."""
        from .ops.stats import queue_stats

        try:
            data = queue_stats(self._status_store(), now=clock.now())
        except StoreError as exc:
            return f"store error: {exc}"
        queued = sum(v["queued"] for v in data.values())
        oldest = max((v["oldest_queued_age"] for v in data.values()), default=0.0)
        lead = ", leader" if self._leads() else ""
        return f"{queued} queued, oldest {oldest:.0f}s, {self.inflight()} running{lead}"

    def _status_store(self) -> Store:
        if self._status is None:
            self._status = open_store(self.path, readonly=True)
        return self._status

    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def pid(self) -> int:
        return os.getpid()
