"""Cron firing: the pure plan, and the scheduler against a real store with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jobrun
from jobrun import catalog, enqueue
from jobrun.config import CronEntry, Settings
from jobrun.cron import Every, parse_schedule
from jobrun.scheduler import Scheduler, plan

UTC = UTC
T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
MINUTE = Every(60)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_new_entry_fires_nothing_missed() -> None:
    p = plan(MINUTE, None, at(30))
    assert p.fires == [] and p.cursor == at(30)


def test_due_fires_are_made_even_late() -> None:
    p = plan(MINUTE, at(-1), at(90))
    assert p.fires == [at(0), at(60)] and p.cursor == at(90)


def test_clock_back_repeats_nothing() -> None:
    p = plan(MINUTE, at(600), at(30))
    assert p.fires == [] and p.cursor == at(600)


def test_jump_forward_makes_one_catch_up_fire() -> None:
    p = plan(MINUTE, at(1), at(3600), jumped=True)
    assert p.fires == [at(3600)] and p.skipped == 59


def test_misfire_skip_and_once_at_start() -> None:
    # Down for an hour: fires more than `grace` overdue were missed while nothing ran.
    skip = plan(MINUTE, at(0), at(3600 + 30), starting=True, grace=60, misfire="skip")
    assert skip.fires == [at(3600)] and skip.skipped == 59
    once = plan(MINUTE, at(0), at(3600 + 30), starting=True, grace=60, misfire="once")
    assert once.fires == [at(3540), at(3600)]
    # A leader that died a second ago loses no fire to its successor.
    handover = plan(Every(1), at(10), at(12.5), starting=True, grace=60)
    assert handover.fires == [at(11), at(12)]


def test_dst_schedule_through_plan() -> None:
    trig = parse_schedule("30 2 * * *", "America/New_York")
    start = datetime(2026, 3, 7, 12, tzinfo=UTC)
    p = plan(trig, start, datetime(2026, 3, 9, 12, tzinfo=UTC))
    assert [f.isoformat() for f in p.fires] == ["2026-03-08T07:00:00+00:00",
                                                "2026-03-09T06:30:00+00:00"]


def make(store_path: str, entries: list[CronEntry]) -> tuple[Scheduler, list[datetime]]:
    settings = Settings(cron=tuple(entries))
    fired: list[datetime] = []
    app = jobrun.App(store_path, settings=settings)
    app.store  # noqa: B018 - open before the scheduler's transactions

    def job(entry, fire):  # type: ignore[no-untyped-def]
        fired.append(fire)
        return enqueue.new_job(entry.task, [], {}, {"run_at": fire}, jobrun.clock.now(),
                               catalog.resolve(None, None, None, settings))

    return Scheduler(app.store, lambda: settings, job), fired


def test_scheduler_fires_each_due_time_once(store_path: str) -> None:
    entry = CronEntry("tick", every=10.0, task="x:tick")
    a, fired_a = make(store_path, [entry])
    assert a._lock.acquire("a")
    a.fire_due(at(0), starting=True)
    a.fire_due(at(5))
    a.fire_due(at(25))
    assert fired_a == [at(10), at(20)]
    # A second leader overlapping (lock lost, stale state): the UNIQUE row stops a re-fire.
    b, fired_b = make(store_path, [entry])
    b._lock._lock._fd = -1  # pretend to lead too (FileLeadership._lock: the flock)
    b._cursors, b._triggers = {}, {}
    b.fire_due(at(25), starting=False)
    b._cursors["tick"] = at(5)
    b.fire_due(at(25))
    assert fired_b == []  # both due times were taken: no job enqueued
    rows = a.store.read("SELECT entry, fire_at, job_id FROM cron_fires ORDER BY fire_at")
    assert [(r[0], r[1]) for r in rows] == [("tick", at(10).timestamp()),
                                            ("tick", at(20).timestamp())]
    assert a.store.read("SELECT count(*) FROM jobs")[0][0] == 2
    b._lock._lock._fd = None


def test_scheduler_resumes_from_the_last_fire(store_path: str) -> None:
    entry = CronEntry("tick", every=10.0, task="x:tick")
    a, _ = make(store_path, [entry])
    a.fire_due(at(0), starting=True)
    a.fire_due(at(10))
    # The next leader starts from the stored last fire, not from its own clock.
    b, fired_b = make(store_path, [entry])
    b.fire_due(at(31), starting=True)
    assert fired_b == [at(20), at(30)]
