"""Maintenance: what a service does once or twice a second beside its loop, one duty per
module, each given what it needs (a `ServiceView`) rather than the service itself.

    rescue.py    take back the jobs of dead holders (by their free lock) and expired leases
    leases.py    renew this service's leases
    fencing.py   tell attempts whose job was cancelled or taken back
    timeouts.py  record thread jobs past their timeout (a thread cannot be stopped)
    unknown.py   jobs of tasks no live or recent service declares go dead
    holders.py   keep this service's liveness, forget what dead holders published
    alone.py     the queues no other live service serves (where jobs may be held ahead)
    prune.py     delete finished jobs past their retention
    alerting.py  alert thresholds (on the leader only)

It runs in a thread of its own, with its own store connection (its thread's).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ... import clock
from ...config import Settings
from ...errors import StoreError
from ...presence.contract import Liveness, Presence
from ...store.contract import Store
from ..inflight import InFlight
from . import alerting, alone, fencing, holders, leases, prune, rescue, timeouts, unknown

log = logging.getLogger("jobrun.service")


@dataclass
class ServiceView:
    """What maintenance may see and do of its service."""

    store: Store
    path: str
    holder: str
    inflight: InFlight
    settings: Callable[[], Settings]
    tasks: Callable[[], frozenset[str]]
    wake: Callable[[], None]              # wake the loop: jobs came back, retries are due
    cancel_running: Callable[[int], None]  # stop an async attempt of this job id
    leader: Callable[[], bool]
    presence: Presence                    # who is alive, who leads (files or advisory locks)
    liveness: Liveness                    # this service's own
    alone: Callable[[frozenset[str]], None] = lambda queues: None  # queues served alone


class Maintenance:
    def __init__(self, view: ServiceView) -> None:
        self.view = view
        self._last: dict[str, float] = {}
        self._alerter = alerting.Alerter()
        self._stop = threading.Event()
        self.ran_at = clock.monotonic()
        self.rescued = 0

    def run(self) -> None:
        interval = min(0.5, self.view.settings().poll)
        while not self._stop.wait(interval):
            try:
                self.once()
            except StoreError as exc:
                log.error("maintenance round failed: %s", exc)
            except Exception:  # keep the service alive; the next round tries again
                log.exception("maintenance round failed")

    def stop(self) -> None:
        self._stop.set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds` unless maintenance stops (for helpers that poll)."""
        return self._stop.wait(seconds)

    def _due(self, duty: str, every: float, now_m: float, first: bool) -> bool:
        if first or now_m - self._last.get(duty, -1e18) >= every:
            self._last[duty] = now_m
            return True
        return False

    def once(self, first: bool = False) -> None:
        v = self.view
        self.ran_at = now_m = clock.monotonic()
        now = clock.now()
        settings = v.settings()
        losses = v.liveness.losses
        v.liveness.keep()
        if v.liveness.losses != losses and len(v.inflight):
            fencing.stop_fenced(v, liveness_lost=True)
        self.rescued += rescue.dead_holders(v, now) + rescue.expired_leases(v, now)
        if self._due("leases", settings.lease / 3, now_m, first):
            leases.extend(v, now)
        if len(v.inflight):
            fencing.stop_fenced(v)
            timeouts.time_out_threads(v)
        if self._due("unknown", unknown.EVERY, now_m, first):
            unknown.sweep(v, now)
        if self._due("alone", alone.EVERY, now_m, first):
            alone.look(v)
        if self._due("holders", 10.0, now_m, first):
            holders.sweep(v)
        if settings.alerts and v.leader() and self._due("alerts", 10.0, now_m, False):
            self._alerter.check(v, settings.alerts, now)
        if self._due("prune", 60.0, now_m, first) and not first:
            prune.prune(v, now)
