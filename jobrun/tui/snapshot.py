"""One frame of `jobrun top` as plain data, read from the store (its DashboardStore reads),
its services' presence and the config: the same on SQLite and on PostgreSQL.

Several dashboards may watch a busy service, so every read is answered by a partial index
(queued, running, waiting, dead) or by a short range of `jobs_finished`: finished counts per
5-second bucket are kept in a `Window` between refreshes, and each refresh reads only the
rows finished in the last few seconds, never an hour of them. The time is an argument.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..config import Settings
from ..errors import StoreError
from ..presence import presence_for
from ..presence.contract import Presence
from ..scheduler import describe
from ..store.contract import DashboardRead, Store
from .window import BUCKET, HOUR, MINUTE, Window

SPARK = 72        # buckets kept for the sparkline: six minutes
FAILURES = 8      # recent failures kept
RUNNING = 200     # running jobs kept (the view truncates to the screen)


# -- the data ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueRow:
    name: str
    queued: int = 0
    scheduled: int = 0
    running: int = 0                  # in state running: started, and held (below)
    retrying: int = 0
    dead: int = 0
    oldest_age: float | None = None   # seconds the oldest queued job has been ready
    throughput: float = 0.0           # jobs finished per second over the last minute
    succeeded_hour: int = 0
    dead_hour: int = 0
    cap: int | None = None            # concurrency of the live services (or the config)
    paused: bool = False
    done_minutes: tuple[int, ...] = ()  # succeeded per minute over the hour, oldest first
    dead_minutes: tuple[int, ...] = ()  # dead (failed for good) per minute, the same
    p50: float | None = None          # run time (seconds) of the hour's finished jobs
    p95: float | None = None
    held: int = 0                     # of `running`, claimed ahead of a free worker, not started

    @property
    def started(self) -> int:
        """Running jobs a worker runs now (held ones wait for one; both take the cap)."""
        return self.running - self.held

    @property
    def failure_rate(self) -> float | None:
        """Dead / (succeeded + dead) finished in the last hour; None when none finished."""
        done = self.succeeded_hour + self.dead_hour
        return self.dead_hour / done if done else None


@dataclass(frozen=True)
class RunningJob:
    id: int
    task: str
    queue: str
    attempt: int
    max_attempts: int
    elapsed: float
    holder: str
    holder_alive: bool = True         # False: its service is gone (the job awaits rescue)
    held: bool = False                # claimed ahead of a free worker: not started, elapsed 0


@dataclass(frozen=True)
class Failure:
    id: int
    task: str
    queue: str
    state: str
    attempt: int
    max_attempts: int
    at: float | None
    error_type: str
    message: str


@dataclass(frozen=True)
class CronRow:
    name: str
    when: str
    task: str
    next_at: float | None
    timezone: str = "UTC"
    last_at: float | None = None      # the last fire recorded in the store


@dataclass(frozen=True)
class ServiceRow:
    holder: str
    pid: int | None
    host: str
    started: float | None
    queues: tuple[tuple[str, int], ...]
    leader: bool
    beat: float | None = None         # its last heartbeat: a claim or lease renewal; None
    #                                   while it runs nothing (alive by its lock alone)
    configured: tuple[tuple[str, int], ...] = ()  # its config's caps, before a live change


@dataclass(frozen=True)
class Snapshot:
    now: float
    store: str
    queues: tuple[QueueRow, ...] = ()
    running: tuple[RunningJob, ...] = ()
    failures: tuple[Failure, ...] = ()
    dead_total: int = 0
    dead_hour: int = 0
    dead_trend: tuple[int, ...] = ()  # dead per 5 minutes over the last hour, oldest first
    spark: tuple[int, ...] = ()       # finished per 5-s bucket, oldest first, current last
    throughput: float = 0.0           # all queues, per second over the last minute
    cron: tuple[CronRow, ...] = ()
    services: tuple[ServiceRow, ...] = ()
    leader: str | None = None
    waiting: tuple[tuple[str, int], ...] = ()  # workflows waiting, by kind (sleep, event, ...)

    @property
    def running_total(self) -> int:
        """Jobs in state running, held ones included (the running list shows both)."""
        return sum(q.running for q in self.queues)

    @property
    def held_total(self) -> int:
        return sum(q.held for q in self.queues)


# -- reading ----------------------------------------------------------------------------------
def _failure(r: dict[str, Any]) -> Failure:
    try:
        err = json.loads(r["last_error"] or "{}")
    except ValueError:
        err = None
    err = err if isinstance(err, dict) else {}
    at = err.get("at")
    return Failure(int(r["id"]), str(r["task"]), str(r["queue"]), str(r["state"]),
                   int(r["attempts"]), int(r["max_attempts"]),
                   float(at) if isinstance(at, (int, float)) else r["at"],
                   str(err.get("type") or "?"), str(err.get("message") or ""))


def _services(presence: Presence, untils: dict[str, float], lease: float
              ) -> tuple[tuple[ServiceRow, ...], str | None]:
    """Live services as their presence tells (dead ones skipped), their last heartbeats,
    and the leader's id. A lease runs out its service's `lease` after each renewal: the one
    it published, else this config's (a console run without the service's config)."""
    leader = presence.leader()
    rows = []
    for h in sorted(presence.holders()):
        if not presence.alive(h):
            continue
        info = presence.info(h)
        pid, started, own = info.get("pid"), info.get("started"), info.get("lease")
        until = untils.get(h)
        beat = None if until is None else \
            until - (float(own) if isinstance(own, (int, float)) else lease)
        rows.append(ServiceRow(h, pid if isinstance(pid, int) else None,
                               str(info.get("host") or "?"),
                               float(started) if isinstance(started, (int, float)) else None,
                               _caps_of(info.get("queues")), h == leader, beat,
                               _caps_of(info.get("configured"))))
    return tuple(rows), leader


def _caps_of(published: object) -> tuple[tuple[str, int], ...]:
    """A published {queue: cap} as sorted pairs; anything else (an older service) as none."""
    if not isinstance(published, dict):
        return ()
    return tuple(sorted((str(k), v) for k, v in published.items() if isinstance(v, int)))


def _cron(settings: Settings | None, now: float, read: DashboardRead) -> tuple[CronRow, ...]:
    if settings is None:
        return ()
    after = datetime.fromtimestamp(now, UTC)
    rows = []
    for entry in settings.cron:
        d = describe(entry, after, 1)
        nxt = d["next"][0].replace("Z", "+00:00") if d["next"] else None
        when = entry.schedule or f"every {entry.every:g}s"
        if entry.schedule and entry.timezone != "UTC":
            when += f" {entry.timezone}"
        last = read("top_cron_last", {"entry": entry.name})
        rows.append(CronRow(entry.name, when, str(d["task"]),
                            datetime.fromisoformat(nxt).timestamp() if nxt else None,
                            entry.timezone if entry.schedule else "UTC",
                            float(last[0]["last"]) if last and last[0]["last"] is not None
                            else None))
    return tuple(rows)


def _caps(settings: Settings | None, services: tuple[ServiceRow, ...],
          live: dict[str, int]) -> dict[str, int]:
    """Concurrency per queue: one cap for every service sharing the store (a queue's cap is
    host-wide, and on PostgreSQL store-wide), so the config's, overridden by the largest any
    live service serves with, overridden by a live change (`+`/`-`), never their sum."""
    caps = {q: c.concurrency for q, c in settings.queues.items()} if settings else {}
    served: dict[str, list[int]] = {}
    for s in services:
        for q, cap in s.queues:
            served.setdefault(q, []).append(cap)
    caps.update({q: max(c) for q, c in served.items()})
    caps.update(live)
    return caps


def take(store: Store, *, now: float, settings: Settings | None = None,
         window: Window | None = None, presence: Presence | None = None,
         failures: bool = True) -> Snapshot:
    """Read one frame. Pass the same `window` each refresh to read only new finished rows
    (and the same `presence`: it is the store's services, asked again each frame). Without
    `failures` (the console: its jobs list shows them) the recent failures are not read: the
    retrying ones are found by their attempts' start, a lookup per retrying job."""
    window = window if window is not None else Window()
    presence = presence if presence is not None else presence_for(store)
    if window.watch.check(store):
        window.read_to = None  # another file now: its hour is read afresh
    counts: dict[str, dict[str, Any]] = {}
    with store.dashboard() as read:
        for r in read("top_counts", {}):
            counts.setdefault(r["queue"], {})[r["state"]] = int(r["n"])
            if r["oldest"] is not None:
                counts[r["queue"]]["oldest"] = max(0.0, now - float(r["oldest"]))
        paused = {str(r["name"]) for r in read("top_queues", {}) if r["paused"]}
        window.update(read, now)
        running_rows = read("top_running", {"limit": RUNNING})
        untils = {str(r["holder"]): float(r["until"])
                  for r in read("top_beats", {}) if r["until"] is not None}
        dead_queues = [q for q, c in counts.items() if c.get("dead")] if failures else []
        fails = [_failure(r) for q in dead_queues
                 for r in read("top_dead_recent", {"queue": q, "limit": FAILURES})]
        if failures and any(c.get("retrying") for c in counts.values()):
            fails += [_failure(r) for r in read("top_retrying_recent", {"limit": FAILURES})]
        try:
            waiting = tuple(sorted((str(r["kind"]), int(r["n"]))
                                   for r in read("top_waiting", {})))
        except StoreError:  # a store from before workflows, not migrated yet
            waiting = ()
        cron = _cron(settings, now, read)
    fails.sort(key=lambda f: (f.at or 0.0, f.id), reverse=True)
    alive: dict[str, bool] = {}
    running = tuple(
        RunningJob(int(r["id"]), str(r["task"]), str(r["queue"]), int(r["attempts"]),
                   int(r["max_attempts"]),
                   max(0.0, now - float(r["started_at"])) if r["started_at"] is not None
                   else 0.0, str(r["holder"] or "?"),
                   alive.setdefault(str(r["holder"]), presence.alive(str(r["holder"])))
                   if r["holder"] else False, r["started_at"] is None)
        for r in running_rows)
    services, leader = _services(presence, untils, (settings or Settings()).lease)
    caps = _caps(settings, services, store.concurrency())
    hour = window.per_queue(now - HOUR)
    minute_from = math.ceil((now - MINUTE) / BUCKET) * BUCKET
    minute = window.per_queue(minute_from)
    span = max(now - minute_from, BUCKET)
    rows = []
    for name in sorted(set(counts) | paused | {q for q, _ in hour} | set(caps)):
        c = counts.get(name, {})
        done = minute.get((name, "succeeded"), 0) + minute.get((name, "dead"), 0)
        p50, p95 = window.percentiles(name, now - HOUR)
        rows.append(QueueRow(
            name, c.get("queued", 0), c.get("scheduled", 0), c.get("running", 0),
            c.get("retrying", 0), c.get("dead", 0), c.get("oldest"), done / span,
            hour.get((name, "succeeded"), 0), hour.get((name, "dead"), 0), caps.get(name),
            name in paused, window.minutes(now, name, "succeeded"),
            window.minutes(now, name, "dead"), p50, p95, c.get("held", 0)))
    return Snapshot(
        now=now, store=getattr(store, "shown", store.path), queues=tuple(rows),
        running=running, failures=tuple(fails[:FAILURES]), dead_total=sum(r.dead for r in rows),
        dead_hour=sum(r.dead_hour for r in rows),
        dead_trend=window.totals(now, 12, 60, "dead"), spark=window.totals(now, SPARK),
        throughput=sum(r.throughput for r in rows), cron=cron,
        services=services, leader=leader, waiting=waiting)
