"""The store contract (jobrun/store/contract.py), exercised through the contract only: what
every store implementation must do, whatever it is built on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobrun import catalog, enqueue
from jobrun.config import Settings
from jobrun.model import NewJob, Outcome
from jobrun.store import open_store
from jobrun.store.contract import Store
from support.postgres import fresh_store_url

T0 = 1_000_000.0

IMPLEMENTATIONS = ["sqlite", "postgres"]


@pytest.fixture(params=IMPLEMENTATIONS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Every test here runs against each store implementation: a SQLite file in tmp_path,
    and a PostgreSQL schema of its own (skipped, saying how to run it, without a server)."""
    if request.param == "postgres":
        with fresh_store_url() as url:
            s = open_store(url)
            yield s
            s.close()
        return
    s = open_store(str(tmp_path / "jobs.db"))
    yield s
    s.close()


def job(task: str = "t:a", *, queue: str = "default", priority: int = 0, key: str | None = None,
        delay: float | None = None, max_attempts: int = 3, now: float = T0) -> NewJob:
    d = catalog.resolve(None, None, None, Settings(), queue)
    return enqueue.new_job(task, [1], {}, {"priority": priority, "key": key, "delay": delay,
                                           "max_attempts": max_attempts}, now, d)


def acquire(store: Store, n: int = 10, holder: str = "h1", now: float = T0 + 1, **kw: object):
    return store.acquire_round([], {"default": n}, holder, now=now, lease=60, **kw)  # type: ignore[arg-type]


def test_acquire_hands_out_by_priority_then_age_with_fencing_tokens(store: Store) -> None:
    ids = store.enqueue([job(), job(priority=5), job()], now=T0)
    r = acquire(store)
    assert [c.id for c in r.claims] == [ids[1], ids[0], ids[2]]
    assert all(c.attempt == 1 for c in r.claims) and len({c.token for c in r.claims}) == 3
    assert acquire(store).claims == []  # all running now


def test_a_round_claims_only_the_tasks_given(store: Store) -> None:
    a, b = store.enqueue([job("t:a"), job("t:b")], now=T0)
    r = acquire(store, tasks=frozenset({"t:b"}))
    assert [c.id for c in r.claims] == [b]
    assert [c.id for c in acquire(store, tasks=frozenset({"t:a", "t:c"})).claims] == [a]


def test_keys_are_per_task_and_ids_never_reused(store: Store) -> None:
    (first,) = store.enqueue([job("t:a", key="k")], now=T0)
    assert store.enqueue([job("t:a", key="k")], now=T0) == [first]
    (other,) = store.enqueue([job("t:b", key="k")], now=T0)
    assert other != first
    store.cancel(first, now=T0)
    store.cancel(other, now=T0)
    assert store.prune(T0 + 10) == 1  # the newest job is kept: ids only go up
    (later,) = store.enqueue([job()], now=T0)
    assert later > other
    assert store.get(first) is None


def test_a_stale_token_records_nothing(store: Store) -> None:
    store.enqueue([job()], now=T0)
    (c,) = acquire(store).claims
    store.rescue_holder("h1", "worker lost", now=T0 + 2)
    assert store.record([Outcome(c.id, c.token, "succeeded", result="1")], now=T0 + 3) == 0
    (again,) = acquire(store, holder="h2", now=T0 + 4).claims
    assert again.id == c.id and again.token != c.token and again.attempt == 2
    assert store.extend_lease(c.id, c.token, now=T0 + 5, lease=60) is False
    assert store.record_outcomes([Outcome(again.id, again.token, "succeeded", result="2")],
                                 now=T0 + 5) == frozenset({again.token})
    rec = store.get(c.id)
    assert rec is not None and rec.state == "succeeded" and rec.result == 2
    assert [e["type"] for e in rec.errors] == ["WorkerLost"] and rec.errors[0]["attempt"] == 1


def test_release_does_not_count_the_attempt(store: Store) -> None:
    store.enqueue([job()], now=T0)
    (c,) = acquire(store).claims
    assert store.record([Outcome(c.id, c.token, "released")], now=T0 + 2) == 1
    rec = store.get(c.id)
    assert rec is not None and (rec.state, rec.attempts) == ("queued", 0)


def test_held_claims_count_their_attempt_once_they_start(store: Store) -> None:
    ids = store.enqueue([job() for _ in range(5)], now=T0)
    r = acquire(store, 1, ahead={"default": 4})
    assert [c.id for c in r.claims] == ids and [c.held for c in r.claims] == [False] + [True] * 4
    assert all(c.attempt == 1 for c in r.claims)
    _counted, began, ran, back, left = r.claims
    for c in r.claims[1:]:
        rec = store.get(c.id)
        assert rec is not None and (rec.state, rec.attempts, rec.started_at) == ("running", 0, None)
    r2 = store.acquire_round([Outcome(ran.id, ran.token, "succeeded", result="1"),
                              Outcome(back.id, back.token, "released")], {}, "h1",
                             now=T0 + 2, lease=60, began=[(began.id, began.token, T0 + 1.5)])
    assert r2.recorded == 2
    got = {i: store.get(i) for i in ids}
    assert [(got[c.id].state, got[c.id].attempts) for c in r.claims] == [  # type: ignore[union-attr]
        ("running", 1), ("running", 1), ("succeeded", 1), ("queued", 0), ("running", 0)]
    assert got[began.id].started_at == T0 + 1.5  # type: ignore[union-attr]
    assert got[ran.id].started_at is not None  # type: ignore[union-attr]
    # A late `began` for an attempt already recorded changes nothing.
    store.acquire_round([], {}, "h1", now=T0 + 3, lease=60, began=[(ran.id, ran.token, T0)])
    rec = store.get(ran.id)
    assert rec is not None and rec.attempts == 1
    err = {"at": T0, "type": "E", "message": "x", "attempt": 1}
    store.record([Outcome(left.id, left.token, "retrying", run_at=T0 + 50, error=err)],  # type: ignore[arg-type]
                 now=T0 + 4)
    rec = store.get(left.id)
    assert rec is not None and (rec.state, rec.attempts) == ("retrying", 1)


def test_a_dead_holders_held_jobs_go_back_unspent_only_where_its_log_says_never_begun(
        store: Store) -> None:
    ids = store.enqueue([job(max_attempts=2) for _ in range(6)], now=T0)
    r = acquire(store, 1, ahead={"default": 5})
    counted, marked, logged, quiet = r.claims[0], r.claims[1], r.claims[2], r.claims[3]
    store.acquire_round([], {}, "h1", now=T0 + 2, lease=60, began=[(marked.id, marked.token,
                                                                     T0)])
    # Its began log holds `logged` (it began; its start never reached the store) and `marked`.
    rescued = store.rescue_holder("h1", "worker lost", now=T0 + 3,
                                  begun=frozenset({marked.token, logged.token}))
    assert sorted((x.id, x.unspent) for x in rescued) == [
        (counted.id, False), (marked.id, False), (logged.id, False), (quiet.id, True),
        (ids[4], True), (ids[5], True)]
    got = [store.get(i) for i in ids]
    assert [(g.state, g.attempts, len(g.errors)) for g in got] == [  # type: ignore[union-attr]
        ("queued", 1, 1), ("queued", 1, 1), ("queued", 1, 1), ("queued", 0, 0),
        ("queued", 0, 0), ("queued", 0, 0)]
    assert got[2].errors[0]["attempt"] == 1  # type: ignore[union-attr]
    # No log to read (PostgreSQL, or a log older than this boot): every held job counts.
    r2 = acquire(store, 0, holder="h2", now=T0 + 4, ahead={"default": 2})
    store.rescue_holder("h2", "worker lost", now=T0 + 5)
    assert [(g.attempts, len(g.errors)) for g in  # type: ignore[union-attr]
            (store.get(c.id) for c in r2.claims)] == [(2, 2), (2, 2)]
    # A stuck holder lives: it may begin its held jobs yet; their lease's end counts them.
    r3 = acquire(store, 0, holder="h3", now=T0 + 6, ahead={"default": 2})
    assert [c.id for c in r3.claims] == [logged.id, quiet.id] and all(c.held for c in r3.claims)
    for c in r3.claims:
        assert store.rescue_expired(c.id, "stuck", now=T0 + 70)
    assert [(g.state, g.attempts) for g in  # type: ignore[union-attr]
            (store.get(c.id) for c in r3.claims)] == [("dead", 2), ("queued", 1)]


def test_held_jobs_hold_the_host_wide_cap(store: Store) -> None:
    from jobrun.limits import Limits
    store.enqueue([job() for _ in range(4)], now=T0)
    caps = Limits(caps={"default": 2})
    r = acquire(store, 1, limits=caps, ahead={"default": 2})
    assert len(r.claims) == 3  # claimed ahead beyond the cap: the caller serves it alone
    assert acquire(store, 2, holder="h2", limits=caps).claims == []  # they count as running
    store.enqueue([job("t:k"), job("t:k")], now=T0)
    keyed = Limits(key_concurrency={"t:k": 1})
    r = acquire(store, 0, holder="h3", limits=keyed, limited=frozenset({"default"}),
                ahead={"default": 5}, tasks=frozenset({"t:a", "t:k"}))
    assert [c.task for c in r.claims] == ["t:a"]  # a limit counts what runs: none held of it


def test_retrying_waits_for_its_time_and_dead_when_spent(store: Store) -> None:
    store.enqueue([job(max_attempts=2)], now=T0)
    (c,) = acquire(store).claims
    err = {"at": T0, "type": "E", "message": "x", "attempt": 1}
    store.record([Outcome(c.id, c.token, "retrying", run_at=T0 + 50, error=err)],  # type: ignore[arg-type]
                 now=T0 + 2)
    r = acquire(store, now=T0 + 10)
    assert r.claims == [] and r.next_due == T0 + 50
    (c2,) = acquire(store, now=T0 + 51).claims
    assert c2.attempt == 2
    store.rescue_holder("h1", "worker lost", now=T0 + 52)
    rec = store.get(c.id)
    assert rec is not None and rec.state == "dead"


def test_expired_leases_are_rescued(store: Store) -> None:
    store.enqueue([job()], now=T0)
    r = store.acquire_round([], {"default": 1}, "h1", now=T0, lease=5)
    (c,) = r.claims
    assert store.extend_lease(c.id, c.token, now=T0 + 4, lease=5)
    assert store.expired_leases(now=T0 + 8) == []
    (e,) = store.expired_leases(now=T0 + 10)
    assert (e.id, e.holder) == (c.id, "h1")
    (back,) = store.rescue_expired(c.id, "stuck", now=T0 + 10)
    assert (back.id, back.state, back.attempts, back.queue) == (c.id, "queued", 1, "default")
    assert store.running_holders() == []
    st = store.status(c.id)
    assert st is not None and (st.state, st.attempts, st.result) == ("queued", 1, None)
    assert "LeaseExpired" in st.errors


def test_paused_queues_are_not_claimed(store: Store) -> None:
    store.enqueue([job()], now=T0)
    store.set_paused("default", True)
    assert acquire(store).claims == [] and store.paused() == frozenset({"default"})
    store.set_paused("default", False)
    assert len(acquire(store).claims) == 1


def test_the_catalog(store: Store) -> None:
    assert store.catalog() == [] and store.catalog_born() is None
    store.publish_catalog("h1", {"t:a": json.dumps({"queue": "q"})}, now=T0)
    store.publish_catalog("h2", {"t:a": json.dumps({"queue": "r"}), "t:b": "{}"}, now=T0 + 1)
    decls = store.catalog()
    assert [(t, h) for t, h, _, _ in decls] == [("t:a", "h2"), ("t:a", "h1"), ("t:b", "h2")]
    assert decls[0][2] == {"queue": "r"} and store.catalog_born() == T0
    store.touch_catalog("h1", now=T0 + 5)
    store.forget_catalog("h2", before=T0 + 2)
    assert {(t, h, s) for t, h, _, s in store.catalog()} == {("t:a", "h1", T0 + 5)}


def test_jobs_of_unknown_tasks_go_dead(store: Store) -> None:
    ids = store.enqueue([job("nobody:runs"), job("t:a")], now=T0)
    assert set(store.queued_pairs()) == {("default", "nobody:runs"), ("default", "t:a")}
    assert store.dead_unknown("default", "nobody:runs", "no such task", now=T0 + 1) == [ids[0]]
    rec = store.get(ids[0])
    assert rec is not None and rec.state == "dead" and rec.errors[-1]["type"] == "UnknownTask"


def test_a_cron_fire_happens_once(store: Store) -> None:
    made: list[int] = []

    def make() -> NewJob:
        made.append(1)
        return job("t:cron")

    first = store.fire("nightly", T0, make, now=T0)
    assert first is not None and store.fire("nightly", T0, make, now=T0) is None
    assert made == [1] and store.last_fire("nightly") == T0


def test_operator_reads_and_counts(store: Store) -> None:
    ids = store.enqueue([job(), job(delay=100)], now=T0)
    assert store.counts() == {"queued": 1, "scheduled": 1}
    assert store.pending(T0 + 50) == 1 and store.pending(T0 + 200) == 2
    assert [r.id for r in store.list_jobs()] == list(reversed(ids))
    assert store.cancel(ids[1], now=T0) == "scheduled"
    assert store.retry(ids[1], now=T0) == [ids[1]]
    counts = store.queue_counts(since=T0 - 1)
    assert counts["default"]["queued"] == 2


def test_a_retry_never_makes_a_second_job_with_a_held_key(store: Store) -> None:
    """Found by the model test: retrying a cancelled job whose key a newer unfinished job
    holds broke the unique key (StoreError). It is refused instead; --dead skips it."""
    (old,) = store.enqueue([job(key="k")], now=T0)
    store.cancel(old, now=T0)
    (new,) = store.enqueue([job(key="k")], now=T0)
    assert new != old
    assert store.retry(old, now=T0) == []
    rec = store.get(old)
    assert rec is not None and rec.state == "cancelled"
    assert store.retry(None, now=T0) == []


def test_caps_count_every_holder_and_key_limits_hold(store: Store) -> None:
    from dataclasses import replace

    from jobrun.limits import Limits, parse_rate
    store.enqueue([job(), job(), job()], now=T0)
    caps = Limits(caps={"default": 2})
    assert len(acquire(store, holder="h1", limits=caps).claims) == 2
    assert acquire(store, holder="h2", limits=caps).claims == []  # the cap is across holders
    keyed = [replace(job("t:k"), concurrency_key=k) for k in ("a", "a", "b")]
    ids = store.enqueue(keyed, now=T0)
    lim = Limits(key_concurrency={"t:k": 1})
    got = acquire(store, holder="h3", limits=lim, limited=frozenset({"default"}),
                  tasks=frozenset({"t:k"}))
    assert sorted(c.id for c in got.claims) == [ids[0], ids[2]]  # one per key
    rated = Limits(queue_rates={"q": parse_rate("1/m")})
    store.enqueue([job(queue="q"), job(queue="q")], now=T0)
    r = store.acquire_round([], {"q": 5}, "h4", now=T0 + 1, lease=60, limits=rated,
                            limited=frozenset({"q"}))
    assert len(r.claims) == 1 and r.retry_in is not None and r.retry_in > 0
    assert store.bucket("queue:q") is not None


def _step(seq: int, kind: str = "step", state: str = "succeeded", **kw: object) -> object:
    from jobrun.store.contract import StepRecord
    return StepRecord(seq, f"s{seq}", kind, state, **kw)  # type: ignore[arg-type]


def test_workflow_steps_are_fenced_by_the_attempt(store: Store) -> None:
    store.enqueue([job("t:flow")], now=T0)
    (c,) = acquire(store).claims
    assert store.record_step(c.id, c.token, _step(1, result="1"))  # type: ignore[arg-type]
    assert store.record_step(c.id, c.token, _step(2, result="2"))  # type: ignore[arg-type]
    assert [(s.seq, s.result) for s in store.steps(c.id)] == [(1, "1"), (2, "2")]
    store.rescue_holder("h1", "worker lost", now=T0 + 2)
    assert not store.record_step(c.id, c.token, _step(3))  # type: ignore[arg-type]
    assert store.wait_event(c.id, c.token, _step(3, "event", waits="e"),  # type: ignore[arg-type]
                            now=T0 + 2) == ("fenced", None)
    assert store.start_children(c.id, c.token, _step(3, "gather"), [job()],  # type: ignore[arg-type]
                                fanin=True, now=T0 + 2) is None
    assert len(store.steps(c.id)) == 2


def test_grouped_step_records_are_fenced_all_or_none(store: Store) -> None:
    store.enqueue([job("t:flow")], now=T0)
    (c,) = acquire(store).claims
    assert store.holds(c.id, c.token)
    group = [_step(1, result="1"), _step(2, result="2"), _step(3, "sleep", "waiting")]
    assert store.record_steps(c.id, c.token, group)  # type: ignore[arg-type]
    assert store.record_steps(c.id, c.token, [_step(4, result="4")],  # type: ignore[list-item]
                              last=True)
    assert [(s.seq, s.state) for s in store.steps(c.id)] == [
        (1, "succeeded"), (2, "succeeded"), (3, "waiting"), (4, "succeeded")]
    store.rescue_holder("h1", "worker lost", now=T0 + 2)
    assert not store.holds(c.id, c.token)
    late = [_step(5), _step(6)]
    assert not store.record_steps(c.id, c.token, late, last=True)  # type: ignore[arg-type]
    assert len(store.steps(c.id)) == 4


def test_an_event_wakes_its_waiting_workflow(store: Store) -> None:
    store.enqueue([job("t:flow")], now=T0)
    (c,) = acquire(store).claims
    wait = _step(1, "event", waits="paid", until=T0 + 500)
    assert store.wait_event(c.id, c.token, wait, now=T0 + 1) == ("waiting", None)  # type: ignore[arg-type]
    w = store.waiting_step(c.id)
    assert w is not None and (w.seq, w.waits) == (1, "paid")
    assert store.record([Outcome(c.id, c.token, "suspended", run_at=T0 + 500)], now=T0 + 1) == 1
    rec = store.get(c.id)
    assert rec is not None and rec.state == "scheduled" and rec.run_at == T0 + 500
    store.send_event("paid", json.dumps({"n": 1}), now=T0 + 3)
    rec = store.get(c.id)
    assert rec is not None and rec.run_at == T0 + 3  # woken by the event
    (again,) = acquire(store, now=T0 + 4).claims
    assert again.id == c.id and again.attempt == 1  # a suspension is not an attempt
    assert store.wait_event(c.id, again.token, _step(1, "event", waits="paid"),  # type: ignore[arg-type]
                            now=T0 + 4) == ("taken", json.dumps({"n": 1}))
    late = _step(2, "event", waits="never", until=T0 + 4)
    assert store.wait_event(c.id, again.token, late, now=T0 + 4) == ("timeout", None)  # type: ignore[arg-type]


def test_gathered_children_wake_their_parent_when_the_last_finishes(store: Store) -> None:
    store.enqueue([job("t:flow")], now=T0)
    (p,) = acquire(store, tasks=frozenset({"t:flow"})).claims
    kids = store.start_children(p.id, p.token, _step(1, "gather", "waiting"),  # type: ignore[arg-type]
                                [job("t:kid"), job("t:kid")], fanin=True, now=T0 + 1)
    assert kids is not None and len(kids) == 2 and kids[0] < kids[1]
    assert store.children(p.id) == kids and store.open_children(p.id) == 2
    assert store.parents(kids + [p.id]) == {kids[0]: p.id, kids[1]: p.id, p.id: None}
    store.record([Outcome(p.id, p.token, "suspended", run_at=T0 + 900)], now=T0 + 1)
    done = acquire(store, now=T0 + 2, tasks=frozenset({"t:kid"})).claims
    assert sorted(c.id for c in done) == kids
    store.record([Outcome(done[0].id, done[0].token, "succeeded", result="7")], now=T0 + 3)
    rec = store.get(p.id)
    assert rec is not None and rec.run_at == T0 + 900 and store.open_children(p.id) == 1
    store.record([Outcome(done[1].id, done[1].token, "succeeded", result="8")], now=T0 + 4)
    rec = store.get(p.id)
    assert rec is not None and rec.run_at == T0 + 4  # the last child woke it
    res = store.child_results([kids[1], kids[0], 10**9])
    assert [(x.id, x.state, x.result) for x in res] == [(kids[1], "succeeded", "8"),
                                                        (kids[0], "succeeded", "7"),
                                                        (10**9, None, None)]
    assert res[2].errors == "[]"


def test_cancelling_a_workflow_cancels_its_children_and_pruning_takes_its_steps(
        store: Store) -> None:
    store.enqueue([job("t:flow")], now=T0)
    (p,) = acquire(store).claims
    kids = store.start_children(p.id, p.token, _step(1, "enqueue"), [job("t:kid")],  # type: ignore[arg-type]
                                fanin=False, now=T0 + 1)
    assert kids is not None
    assert store.cancel(p.id, now=T0 + 2) == "running"
    rec = store.get(kids[0])
    assert rec is not None and rec.state == "cancelled"
    store.enqueue([job()], now=T0 + 3)  # the newest job is never pruned
    assert store.prune(T0 + 10) == 2
    assert store.steps(p.id) == []


def test_a_job_cancelled_while_it_ran_is_not_retried_until_that_attempt_ends(
        store: Store) -> None:
    """Cancel only asks a running attempt to stop; it may run on, past its lease too. A
    retry made at once queued it and a second service ran it beside the first attempt. Now
    the holder keeps it ("letting go", its lease renewed) until the attempt ends, the holder
    dies or stops renewing; a retry is refused meanwhile."""
    (a, b, c) = store.enqueue([job(), job(), job()], now=T0)
    claims = {x.id: x for x in acquire(store, n=2).claims}  # h1 runs a and b
    assert set(claims) == {a, b}
    for i in (a, b):
        assert store.cancel(i, now=T0 + 2) == "running"
    assert not store.extend_lease(a, claims[a].token, now=T0 + 3, lease=60)  # told to stop
    assert store.retry(a, now=T0 + 5) == []  # its attempt may still run
    rec = store.get(a)
    assert rec is not None and rec.state == "cancelled" and rec.holder == "h1"
    store.extend_leases("h1", now=T0 + 50, lease=60)  # a long attempt: its lease goes on
    assert [e.id for e in store.expired_leases(now=T0 + 100)] == []
    # The attempt ends: its outcome is fenced off and the job let go.
    assert store.record([Outcome(a, claims[a].token, "succeeded", result="1")], now=T0 + 120) == 0
    assert store.retry(a, now=T0 + 121) == [a]
    (again,) = acquire(store, n=1, holder="h2", now=T0 + 122).claims
    assert again.id in (a, c)
    # b's holder dies with its cancelled attempt: let go with it, then retried.
    assert store.retry(b, now=T0 + 130) == []
    assert store.running_holders().count("h1") == 1  # still held: the rescuer looks at h1
    store.rescue_holder("h1", "worker lost", now=T0 + 131)
    assert store.retry(b, now=T0 + 132) == [b]


def test_a_cancelled_workflow_is_not_retried_while_a_child_attempt_still_runs(
        store: Store) -> None:
    """Retried at once, the workflow replayed against a child still cancelled (its attempt
    running on, so not retried with it) and failed attempt after attempt."""
    store.enqueue([job("t:flow")], now=T0)
    (p,) = acquire(store).claims
    kids = store.start_children(p.id, p.token, _step(1, "enqueue"), [job("t:kid")],  # type: ignore[arg-type]
                                fanin=True, now=T0 + 1)
    assert kids is not None
    store.record([Outcome(p.id, p.token, "suspended", run_at=T0 + 900)], now=T0 + 1)
    (kid,) = acquire(store, holder="h2", now=T0 + 2).claims
    assert kid.id == kids[0]
    assert store.cancel(p.id, now=T0 + 3) == "scheduled"
    assert store.retry(p.id, now=T0 + 4) == []  # the child's attempt runs on
    store.record([Outcome(kid.id, kid.token, "succeeded", result="1")], now=T0 + 5)
    assert sorted(store.retry(p.id, now=T0 + 6)) == sorted([p.id, kid.id])


def test_a_stuck_holders_cancelled_attempt_is_let_go_when_its_lease_runs_out(
        store: Store) -> None:
    (a,) = store.enqueue([job()], now=T0)
    (cl,) = acquire(store, n=1).claims  # leased until T0 + 61, never renewed
    assert store.cancel(a, now=T0 + 2) == "running"
    assert [(e.id, e.holder) for e in store.expired_leases(now=T0 + 70)] == [(a, "h1")]
    assert store.rescue_expired(a, "stuck", now=T0 + 70) == []  # not a rescue: a let-go
    assert store.retry(a, now=T0 + 71) == [a]
    rec = store.get(a)
    assert rec is not None and rec.state == "queued" and rec.holder is None and cl.attempt == 1


def test_prune_job_deletes_one_finished_job_never_the_newest(store: Store) -> None:
    store.enqueue([job(), job(), job(), job()], now=T0)
    assert store.cancel(1, now=T0) == "queued" and store.cancel(4, now=T0) == "queued"
    assert store.prune_job(2) is False and store.get(2) is not None  # queued: unfinished
    assert store.prune_job(4) is False and store.get(4) is not None  # the newest
    assert store.prune_job(1) is True and store.get(1) is None
    assert store.prune_job(1) is False  # gone already


def test_a_live_concurrency_per_queue(store: Store) -> None:
    assert store.concurrency() == {}
    store.set_paused("mail", True)
    store.set_concurrency("mail", 3)
    store.set_concurrency("web", 1)
    assert store.concurrency() == {"mail": 3, "web": 1} and store.paused() == {"mail"}
    store.set_concurrency("web", None)
    assert store.concurrency() == {"mail": 3}


def test_an_error_message_with_any_character_is_recorded(store: Store) -> None:
    """A task's exception text is anything (a NUL, lone surrogates escaped by json): it must
    be recorded, never fail the round that records it (a poison outcome)."""
    store.enqueue([job(max_attempts=3)], now=T0)
    (c,) = acquire(store).claims
    text = "bad \x00 byte \u2028 \\u0000 \"quoted\""
    err = {"at": T0, "type": "E", "message": text, "attempt": 1}
    assert store.record([Outcome(c.id, c.token, "retrying", run_at=T0, error=err)],  # type: ignore[arg-type]
                        now=T0 + 2) == 1
    (c2,) = acquire(store, now=T0 + 3).claims
    store.rescue_holder("h1", "lost \x00 here", now=T0 + 4)
    rec = store.get(c.id)
    assert rec is not None and [e["message"] for e in rec.errors] == [text, "lost \x00 here"]
    assert rec.errors[1]["attempt"] == 2 and c2.attempt == 2


def test_queue_names_read_declarations_holding_any_character(store: Store) -> None:
    store.set_paused("p", False)
    store.publish_catalog("h", {"t:a": json.dumps({"queue": "q"}),
                                "t:c": json.dumps({"queue": "r", "x": "\x00"})}, now=T0)
    assert store.queue_names() == {"p", "q", "r"}


# -- the dashboard's reads (DashboardStore): the same names and columns on both stores -----------
def _dashboard_fixture(store: Store) -> tuple[int, int, int]:
    """A queued job, a running one and a dead one (its error: 'disk full')."""
    q, r, d = store.enqueue([job("t:queued"), job("t:run"), job("t:dead", max_attempts=1)],
                            now=T0)
    claims = {c.id: c for c in acquire(store, n=2, now=T0 + 1).claims}
    # the first two claimed are q and r (oldest first): send q back, kill d's attempt
    store.record([Outcome(q, claims[q].token, "released")], now=T0 + 2)
    (cd,) = acquire(store, n=5, now=T0 + 3, tasks=frozenset({"t:dead"})).claims
    err = {"at": T0 + 4, "type": "OSError", "message": "disk full", "attempt": 1}
    store.record([Outcome(cd.id, cd.token, "dead", error=err)], now=T0 + 4)  # type: ignore[arg-type]
    return q, r, d


def test_the_dashboard_reads_rows_by_name(store: Store) -> None:
    _q, r, d = _dashboard_fixture(store)
    with store.dashboard() as read:
        counts = {(x["queue"], x["state"]): x["n"] for x in read("top_counts", {})}
        running = read("top_running", {"limit": 10})
        dead = read("top_dead_recent", {"queue": "default", "limit": 5})
        finished = read("top_finished", {"width": 5.0, "since": T0, "until": T0 + 10})
        assert read("top_cron_last", {"entry": "nope"})[0]["last"] is None
    assert counts == {("default", "queued"): 1, ("default", "running"): 1,
                      ("default", "dead"): 1}
    assert [(x["id"], x["holder"]) for x in running] == [(r, "h1")]
    (row,) = dead
    assert row["id"] == d and json.loads(row["last_error"])["message"] == "disk full"
    assert [(x["state"], x["n"]) for x in finished] == [("dead", 1)]
    assert store.schema()[0] == store.schema()[1] > 0


def test_the_dashboard_pages_jobs_by_state_and_filter(store: Store) -> None:
    from jobrun.tui.browse import page

    q, r, d = _dashboard_fixture(store)
    assert [j.id for j in page(store, "dead").rows] == [d]
    assert [j.id for j in page(store, "queued", text="QUEUED").rows] == [q]
    assert [j.id for j in page(store, "running", queue="default").rows] == [r]
    assert page(store, "dead", text="nothing like it").rows == ()
    # a span smaller than the jobs: the page says where it stopped, and goes on from there
    more = store.enqueue([job("t:many") for _ in range(7)], now=T0 + 5)
    first = page(store, "queued", text="t:queued", scan=3, budget=3)
    assert first.rows == () and first.after is not None and first.scanned == 3
    rest = page(store, "queued", text="t:queued", after=first.after, scan=3, budget=30)
    assert [j.id for j in rest.rows] == [q] and max(more) > q


def test_the_postgres_dashboard_reads_are_answered_by_indexes() -> None:
    """Every dashboard block on PostgreSQL can be answered without a sequential scan of
    jobs (with seqscan priced out, the plan names an index for it)."""
    import psycopg

    from jobrun.store.postgres import DASHBOARD

    params = {"width": 5.0, "since": 0.0, "until": 1.0, "limit": 1, "queue": "q",
              "entry": "e", "state": "dead", "text": "x", "k": 1.0, "id": 10, "scan": 100,
              "args": 1}
    with fresh_store_url() as url:
        open_store(url).close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET enable_seqscan = off")
            for name, text in DASHBOARD.items():
                if name == "top_queues":
                    continue  # a table of a few rows
                for state in ("dead", "queued", "running", "retrying", "succeeded"):
                    plan = "\n".join(r[0] for r in conn.execute(
                        "EXPLAIN " + text, {**params, "state": state}))  # type: ignore[call-overload]
                    assert "Seq Scan on jobs" not in plan, (name, plan)
