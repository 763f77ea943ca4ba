"""Held claims (LeaseStore.acquire_round's `ahead` and `began`) through the batched paths
of a round: several successes at once, starts beside outcomes of every kind, a suspend,
and a capped queue claimed ahead only. The contract suite has the single-row cases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobrun import catalog, enqueue
from jobrun.config import Settings
from jobrun.limits import Limits
from jobrun.model import BEGAN, NewJob, Outcome
from jobrun.store import open_store
from jobrun.store.contract import Store
from support.postgres import fresh_store_url

T0 = 1_000_000.0


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgres":
        with fresh_store_url() as url:
            s = open_store(url)
            yield s
            s.close()
        return
    s = open_store(str(tmp_path / "jobs.db"))
    yield s
    s.close()


def job(task: str = "t:a") -> NewJob:
    d = catalog.resolve(None, None, None, Settings(), "default")
    return enqueue.new_job(task, [1], {}, {}, T0, d)


def test_held_outcomes_and_starts_of_one_round_count_each_attempt_once(store: Store) -> None:
    ids = store.enqueue([job() for _ in range(6)], now=T0)
    r = store.acquire_round([], {}, "h1", now=T0 + 1, lease=60, ahead={"default": 6})
    assert [c.id for c in r.claims] == ids and all(c.held and c.attempt == 1 for c in r.claims)
    a, b, c, d, e, f = r.claims
    err = {"at": T0, "type": "E", "message": "x", "attempt": 1}
    r2 = store.acquire_round(
        [Outcome(b.id, b.token, "succeeded", result="2"),
         Outcome(a.id, a.token, "succeeded", result="1"),
         Outcome(c.id, c.token, "retrying", run_at=T0 + 50, error=err),  # type: ignore[arg-type]
         Outcome(d.id, d.token, "released")], {}, "h1", now=T0 + 3, lease=60,
        began=[(f.id, f.token, T0 + 2.5), (e.id, e.token, T0 + 2), (a.id, a.token, T0 + 1.5)])
    assert r2.recorded == 4
    got = [store.get(i) for i in ids]
    assert [(g.state, g.attempts) for g in got] == [  # type: ignore[union-attr]
        ("succeeded", 1), ("succeeded", 1), ("retrying", 1), ("queued", 0), ("running", 1),
        ("running", 1)]
    assert [g.started_at for g in got] == [  # type: ignore[union-attr]  (a: when it began)
        T0 + 1.5, T0 + 3, T0 + 3, None, T0 + 2, T0 + 2.5]
    store.rescue_holder("h1", "worker lost", now=T0 + 4)  # the two that began were spent
    assert [(g.state, g.attempts, len(g.errors)) for g in  # type: ignore[union-attr]
            (store.get(i) for i in ids[4:])] == [("queued", 1, 1), ("queued", 1, 1)]


def test_a_held_workflow_that_suspends_gives_back_only_what_it_counted(store: Store) -> None:
    ids = store.enqueue([job("t:flow"), job("t:flow")], now=T0)
    r = store.acquire_round([], {}, "h1", now=T0 + 1, lease=60, ahead={"default": 2})
    waits, began = r.claims
    store.acquire_round([], {}, "h1", now=T0 + 2, lease=60,
                        began=[(began.id, began.token, T0 + 2)])
    assert store.record([Outcome(waits.id, waits.token, "suspended", run_at=T0 + 500),
                         Outcome(began.id, began.token, "suspended", run_at=T0 + 500)],
                        now=T0 + 3) == 2
    assert [(g.state, g.attempts) for g in  # type: ignore[union-attr]
            (store.get(i) for i in ids)] == [("scheduled", 0), ("scheduled", 0)]
    again = store.acquire_round([], {"default": 2}, "h1", now=T0 + 501, lease=60)
    assert [(c.id, c.attempt, c.held) for c in again.claims] == [
        (ids[0], 1, False), (ids[1], 1, False)]


def test_a_capped_queue_claimed_ahead_only_is_taken_for_every_holder(store: Store) -> None:
    ids = store.enqueue([job() for _ in range(3)], now=T0)
    caps = Limits(caps={"default": 1})
    r = store.acquire_round([], {"default": 0}, "h1", now=T0 + 1, lease=60, limits=caps,
                            ahead={"default": 2})
    assert [(c.id, c.held) for c in r.claims] == [(ids[0], True), (ids[1], True)]
    other = store.acquire_round([], {"default": 1}, "h2", now=T0 + 1, lease=60, limits=caps)
    assert other.claims == []
    store.record([Outcome(c.id, c.token, "released") for c in r.claims], now=T0 + 2)
    other = store.acquire_round([], {"default": 5}, "h2", now=T0 + 3, lease=60, limits=caps)
    assert [(c.id, c.attempt, c.held) for c in other.claims] == [(ids[0], 1, False)]


def test_a_held_attempt_that_began_after_its_cancel_still_counts(store: Store) -> None:
    """The cancel reaches the service a moment later: a held job begun meanwhile ran, and
    its attempt counts (its row keeps the token while it lets go)."""
    (i,) = store.enqueue([job()], now=T0)
    (c,) = store.acquire_round([], {"default": 0}, "h", now=T0, lease=60,
                               ahead={"default": 1}).claims
    assert c.held and store.cancel(i, now=T0 + 1) == "running"
    store.acquire_round([Outcome(c.id, c.token, "succeeded", result="1")], {}, "h",
                        now=T0 + 3, lease=60, began=[(c.id, c.token, T0 + 2)])
    rec = store.get(i)
    assert rec is not None and (rec.state, rec.attempts, rec.holder) == ("cancelled", 1, None)


def test_a_held_attempt_whose_start_rides_on_its_outcome_counts_once(store: Store) -> None:
    """The service's way: an attempt that began and ended between two rounds sends no
    `began` row; its outcome carries the start. Cancelled meanwhile, it still counts (its
    start recorded); a success counts and starts when it is recorded."""
    ids = store.enqueue([job(), job()], now=T0)
    done, cancelled = store.acquire_round([], {"default": 0}, "h", now=T0, lease=60,
                                          ahead={"default": 2}).claims
    assert store.cancel(cancelled.id, now=T0 + 1) == "running"
    r = store.acquire_round([Outcome(c.id, c.token, "succeeded", result="1",
                                     extra={BEGAN: T0 + 2}) for c in (done, cancelled)], {},
                            "h", now=T0 + 3, lease=60)
    assert (r.recorded, r.applied) == (1, frozenset({done.token}))  # the batch's one miss
    got = [store.get(i) for i in ids]
    assert [(g.state, g.attempts, g.holder, g.started_at) for g in got] == [  # type: ignore[union-attr]
        ("succeeded", 1, None, T0 + 3), ("cancelled", 1, None, T0 + 2)]
