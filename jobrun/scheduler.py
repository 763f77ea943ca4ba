"""Cron: one fire per due time, however many services run.

Only the leader (the holder of the presence's leadership: an exclusive flock on `leader.lock`
beside a SQLite store, a session-level advisory lock on PostgreSQL) enqueues cron jobs; when
it dies or its connection is cut off, another service takes the lock within half a second. A fire is a row
in `cron_fires` (PRIMARY KEY entry, fire time) written in the same transaction as its job, so
a second fire of the same due time is impossible even if two leaders overlapped.

What to fire is decided by `plan`, a pure function of the entry's cursor and the clock:
  * fires due since the cursor are made, late if need be (a leader's death costs no fire);
  * fires more than `grace` seconds overdue when a leader starts were missed while no service
    ran: `misfire = "skip"` drops them, `"once"` makes one catch-up fire;
  * a wall clock that jumps forward makes at most one catch-up fire per entry; one that jumps
    back repeats nothing (the cursor never moves back).
Waiting uses the monotonic clock, for at most a second, so a jump is seen quickly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from . import clock
from .config import CronEntry, Settings
from .cron import Every, Schedule, Trigger, due_between, next_fires, parse_schedule
from .errors import JobrunError
from .model import NewJob
from .presence import presence_for
from .store.contract import Store

log = logging.getLogger("jobrun.scheduler")
UTC = UTC
JUMP = 5.0  # seconds the wall clock may drift from the monotonic one before it is a jump


def trigger_of(entry: CronEntry) -> Trigger:
    if entry.every is not None:
        return Every(entry.every)
    assert entry.schedule is not None
    return parse_schedule(entry.schedule, entry.timezone)


def task_of(entry: CronEntry) -> str:
    """The task a cron entry enqueues: its `task`, or the command task made for it."""
    return entry.task or f"cron:{entry.name}"


@dataclass(frozen=True)
class Plan:
    fires: list[datetime]
    cursor: datetime
    skipped: int = 0


def plan(trigger: Trigger, cursor: datetime | None, now: datetime, *, misfire: str = "skip",
         grace: float = 60.0, starting: bool = False, jumped: bool = False,
         limit: int = 1000) -> Plan:
    """Which fires to make now. Pure: the scheduler and the tests call it with their clocks."""
    if cursor is None:
        return Plan([], now)  # a new entry: nothing was missed
    if now <= cursor:
        return Plan([], cursor)  # the clock went back: never repeat a fire
    due = due_between(trigger, cursor, now, limit=limit)
    if not due:
        return Plan([], now)
    if jumped:
        return Plan(due[-1:], now, len(due) - 1)
    if starting or len(due) >= limit:
        edge = now.timestamp() - grace
        stale = [d for d in due if d.timestamp() < edge]
        recent = [d for d in due if d.timestamp() >= edge]
        fires = ([stale[-1]] if stale and misfire == "once" else []) + recent
        return Plan(fires, now, len(due) - len(fires))
    return Plan(due, now)


class Scheduler:
    """The cron loop of one service process; it fires only while it holds leadership."""

    def __init__(self, store: Store, settings: Callable[[], Settings],
                 job: Callable[[CronEntry, datetime], NewJob], holder: str = "") -> None:
        self.holder = holder
        self.store = store
        self._settings = settings
        self._job = job
        self._lock = presence_for(store).leadership()
        self._cursors: dict[str, datetime | None] = {}
        self._triggers: dict[str, tuple[CronEntry, Trigger]] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._changed_at: datetime | None = None
        self._thread: threading.Thread | None = None
        self.fired = 0
        self.ran_at = clock.monotonic()

    @property
    def leader(self) -> bool:
        return self._lock.held

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="jobrun-cron", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._lock.release()

    def _entries(self) -> dict[str, tuple[CronEntry, Trigger]]:
        """The current entries; a changed entry starts afresh, a removed one is forgotten."""
        entries = {e.name: e for e in self._settings().cron}
        for name in list(self._triggers):
            if name not in entries or self._triggers[name][0] != entries[name]:
                del self._triggers[name]
                self._cursors.pop(name, None)
        for name, e in entries.items():
            if name not in self._triggers:
                self._triggers[name] = (e, trigger_of(e))
                cursor = self._last_fire(name) if self.leader else None
                if self._changed_at is not None:
                    # Added or changed by a reload: due times from the edit on, none before.
                    cursor = self._changed_at if cursor is None else max(cursor,
                                                                         self._changed_at)
                self._cursors[name] = cursor
        return self._triggers

    def settings_changed(self, now: float) -> None:
        """A reload was applied at `now` (wall clock): look at the entries at once."""
        self._changed_at = datetime.fromtimestamp(now, UTC)
        self._wake.set()

    def _last_fire(self, name: str) -> datetime | None:
        ts = self.store.last_fire(name)
        return None if ts is None else datetime.fromtimestamp(ts, UTC)

    def _run(self) -> None:
        prev_wall, prev_mono = clock.now(), clock.monotonic()
        while not self._stop.is_set():
            self.ran_at = clock.monotonic()
            wait = 0.5
            try:
                starting = False
                leads = self.leader
                if not leads and self._lock.acquire(self.holder):
                    leads = starting = True
                    self._triggers.clear()
                    log.info("this process now leads the scheduler")
                if leads:
                    now_ts, mono = clock.now(), clock.monotonic()
                    jumped = (now_ts - prev_wall) - (mono - prev_mono) > JUMP
                    if jumped:
                        log.warning("wall clock jumped forward by %.0fs: at most one catch-up "
                                    "fire per entry", (now_ts - prev_wall) - (mono - prev_mono))
                    prev_wall, prev_mono = now_ts, mono
                    wait = self.fire_due(datetime.fromtimestamp(now_ts, UTC), starting=starting,
                                     jumped=jumped)
                else:
                    prev_wall, prev_mono = clock.now(), clock.monotonic()
            except JobrunError as exc:
                log.error("scheduler round failed: %s", exc)
            except Exception:
                log.exception("scheduler round failed")
            self._wake.wait(max(0.001, wait))
            self._wake.clear()

    def fire_due(self, now: datetime, *, starting: bool = False, jumped: bool = False) -> float:
        """Make the fires due at `now`; returns seconds until the next one (at most 1)."""
        grace = self._settings().misfire_grace
        wait = 1.0
        for name, (entry, trig) in self._entries().items():
            if starting:
                self._cursors[name] = self._last_fire(name)
            p = plan(trig, self._cursors[name], now, misfire=entry.misfire, grace=grace,
                     starting=starting, jumped=jumped)
            if p.skipped:
                log.warning("cron %s: %d missed fire(s) not made (misfire=%s)", name, p.skipped,
                            entry.misfire)
            cursor = self._cursors[name]
            for fire in p.fires:
                self._fire(entry, fire)
                cursor = fire
            self._cursors[name] = max(p.cursor, cursor) if cursor else p.cursor
            nxt = next_fires(trig, self._cursors[name] or now, 1)
            if nxt:
                wait = min(wait, (nxt[0] - now).total_seconds())
        return wait

    def _fire(self, entry: CronEntry, fire: datetime) -> None:
        job_id = self.store.fire(entry.name, fire.timestamp(), lambda: self._job(entry, fire),
                                 now=clock.now())
        if job_id is None:
            return  # fired already (another leader overlapped)
        self.fired += 1
        log.info("cron %s fired for %s: job %s", entry.name, fire.isoformat(), job_id,
                 extra={"jobrun": {"event": "cron", "entry": entry.name, "job_id": job_id}})


def describe(entry: CronEntry, after: datetime, count: int) -> dict[str, Any]:
    """An entry and its next fires, in UTC and in its zone (for `jobrun cron ls`)."""
    trig = trigger_of(entry)
    fires = next_fires(trig, after, count)
    from zoneinfo import ZoneInfo  # here: a service without cron never loads zoneinfo

    zone: tzinfo = ZoneInfo(trig.tz) if isinstance(trig, Schedule) else UTC
    return {
        "name": entry.name, "schedule": entry.schedule, "every": entry.every,
        "timezone": entry.timezone, "task": task_of(entry), "misfire": entry.misfire,
        "next": [f.isoformat().replace("+00:00", "Z") for f in fires],
        "next_local": [f.astimezone(zone).isoformat() for f in fires],
    }
