"""Limits on claiming, with real services on real SQLite files: a queue's concurrency cap
across every service on the host, per-key concurrency, rate limits (queue, task, key) and
round-robin fairness between keys. Plus the pure functions of `jobrun.limits`.

Start times come from the store (`started_at` is the `now` the claim's rate buckets saw, so
rate checks are exact); concurrency from run windows the tasks record themselves (a ledger
table in the store, or counters in the service's process).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jobrun
from conftest import run_cli
from crashapp.harness import Reader, ServiceProc, wait_for, wait_serving
from execapp import tasks as t
from jobrun.limits import (
    Bucket,
    Candidate,
    Limits,
    Rate,
    choose,
    parse_rate,
    round_robin,
)
from support.apps import close_apps, open_app, served
from support.config import write_config as _write_config
from support.spans import max_overlap


# -- jobrun.limits: pure functions ---------------------------------------------------------
@pytest.mark.parametrize("text, count, period", [
    ("10/s", 10, 1), ("10/sec", 10, 1), ("1/second", 1, 1), ("100/m", 100, 60),
    ("100/min", 100, 60), ("3/minute", 3, 60), ("5/h", 5, 3600), ("2/hour", 2, 3600),
    ("7/d", 7, 86400), ("1/day", 1, 86400), ("1/10s", 1, 10), ("2.5/s", 2.5, 1),
    (" 4 / 2 m ", 4, 120), ("10/S", 10, 1),
])
def test_parse_rate(text: str, count: float, period: float) -> None:
    r = parse_rate(text)
    assert (r.count, r.period) == (count, period)
    assert math.isclose(r.per_second, count / period)


@pytest.mark.parametrize("bad", ["", "10", "/s", "10/", "10/x", "0/s", "-1/s", "ten/s",
                                 "10/s/s", "1e3/s", 10, None, 2.5])
def test_parse_rate_refuses(bad: Any) -> None:
    with pytest.raises(ValueError, match="not a rate"):
        parse_rate(bad)


@pytest.mark.parametrize("bad", ["5/0s", "5/0m", "1/00h"])
def test_parse_rate_refuses_a_zero_period(bad: str) -> None:
    """"5/0s" is no rate. Accepted, its zero period divides by zero later, inside the
    service's claim round, whose thread then dies: every queue of the service stops."""
    with pytest.raises(ValueError):
        parse_rate(bad)


def test_jobrun_check_refuses_a_zero_period_rate(tmp_path: Path) -> None:
    cfg = tmp_path / "jobrun.toml"
    cfg.write_text('[jobrun]\nstore = "jobs.db"\n[queues.q]\nrate_limit = "5/0s"\n')
    r = run_cli("check", "--config", str(cfg))
    assert r.returncode == 78, (r.returncode, r.stdout, r.stderr)
    assert "rate_limit" in r.stdout + r.stderr


def C(i: int, key: str | None = None, task: str = "t", priority: int = 0) -> Candidate:
    return Candidate(i, task, priority, key)


def test_round_robin_interleaves_keys() -> None:
    heads: dict[str | None, list[Candidate]] = {
        "a": [C(1, "a"), C(2, "a"), C(3, "a"), C(4, "a")],
        "b": [C(10, "b"), C(11, "b")],
        None: [C(5)],
    }
    assert [c.id for c in round_robin(heads)] == [1, 5, 10, 2, 11, 3, 4]
    assert round_robin({}) == []
    assert round_robin({"a": []}) == []


def test_round_robin_orders_a_rank_by_priority_then_age() -> None:
    heads: dict[str | None, list[Candidate]] = {
        "a": [C(1, "a"), C(2, "a", priority=9)],
        "b": [C(3, "b", priority=5), C(4, "b")],
    }
    # Rank 0 holds each key's head: b's (priority 5) before a's; rank 1: a's 9 first.
    assert [c.id for c in round_robin(heads)] == [3, 1, 2, 4]


def test_choose_respects_budget_and_key_concurrency() -> None:
    limits = Limits(key_concurrency={"t": 2})
    cands = round_robin({"a": [C(1, "a"), C(2, "a"), C(3, "a")],
                         "b": [C(4, "b"), C(5, "b"), C(6, "b")]})
    ids, wait = choose(cands, 10, limits, "q", {"a": 1}, {}, 0.0)
    assert sorted(ids) == [1, 4, 5]  # a already runs 1 of its 2
    assert wait is None
    ids, _ = choose(cands, 2, limits, "q", {}, {}, 0.0)
    assert ids == [1, 4]  # the budget, in round-robin order
    # A task without a per-key cap is not held by its key.
    ids, _ = choose([C(7, "a", task="other"), C(8, "a", task="other")], 5, limits, "q",
                    {"a": 5}, {}, 0.0)
    assert ids == [7, 8]


def test_choose_queue_rate_consumes_tokens_and_says_when() -> None:
    limits = Limits(queue_rates={"q": Rate(2, 1.0)})
    buckets: dict[str, Bucket] = {}
    ids, wait = choose([C(i) for i in range(1, 6)], 10, limits, "q", {}, buckets, 100.0)
    assert ids == [1, 2]  # a new bucket is full: the burst is `count`
    assert wait is not None and math.isclose(wait, 0.5)
    assert math.isclose(buckets["queue:q"].tokens, 0.0)
    # Half a second later one token is back; the bucket never holds more than `count`.
    ids, wait = choose([C(3), C(4)], 10, limits, "q", {}, buckets, 100.5)
    assert ids == [3] and wait is not None
    buckets["queue:q"] = Bucket(0.0, 0.0)
    ids, _ = choose([C(i) for i in range(10)], 10, limits, "q", {}, buckets, 1000.0)
    assert len(ids) == 2


def test_choose_task_rate_holds_only_that_task() -> None:
    limits = Limits(task_rates={"slow": Rate(1, 1.0)})
    cands = [C(1, task="slow"), C(2, task="slow"), C(3, task="free"), C(4, task="free")]
    ids, wait = choose(cands, 10, limits, "q", {}, {}, 0.0)
    assert ids == [1, 3, 4]
    assert wait is not None and math.isclose(wait, 1.0)


def test_choose_key_rate_is_per_key() -> None:
    limits = Limits(key_rates={"t": Rate(2, 1.0)})
    buckets: dict[str, Bucket] = {}
    cands = round_robin({"a": [C(i, "a") for i in range(1, 5)],
                         "b": [C(i, "b") for i in range(11, 15)]})
    ids, wait = choose(cands, 10, limits, "q", {}, buckets, 0.0)
    assert sorted(ids) == [1, 2, 11, 12]
    assert set(buckets) == {"key:a", "key:b"}
    assert wait is not None and math.isclose(wait, 0.5)


def test_limits_limited_names_queues_needing_the_careful_path() -> None:
    limits = Limits(caps={"q": 2}, queue_rates={"r": Rate(1, 1)}, task_rates={"t1": Rate(1, 1)},
                    key_concurrency={"t2": 1}, key_rates={"t3": Rate(1, 1)})
    by_queue = {"q": {"plain"}, "a": {"t1"}, "b": {"t2"}, "c": {"t3", "plain"}}
    assert not limits.limited("q", by_queue)
    assert limits.limited("r", by_queue)
    assert all(limits.limited(q, by_queue) for q in ("a", "b", "c"))
    assert not limits.limited("nowhere", by_queue)


# -- helpers -------------------------------------------------------------------------------
def write_config(folder: Path, body: str, *, jobrun_extra: str = "",
                 name: str = "jobrun.toml") -> str:
    """A config beside `jobs.db` in `folder`, importing execapp.tasks."""
    return _write_config(folder, imports=["execapp.tasks"], name=name, shutdown_timeout=5,
                         jobrun=jobrun_extra, body=body)


@pytest.fixture(autouse=True)
def _close_apps() -> Iterator[None]:
    yield
    close_apps()


def all_done(app: jobrun.App, ids: list[int]) -> bool:
    marks = ",".join("?" * len(ids))
    n = app.store.read(f"SELECT count(*) FROM jobs WHERE id IN ({marks}) AND state IN "
                       "('succeeded', 'dead', 'cancelled')", ids)[0][0]
    return int(n) == len(ids)


def rows(app: jobrun.App, ids: list[int]) -> list[tuple[Any, ...]]:
    """(id, state, attempts, started_at, finished_at) by id."""
    marks = ",".join("?" * len(ids))
    return app.store.read(f"SELECT id, state, attempts, started_at, finished_at FROM jobs "
                          f"WHERE id IN ({marks}) ORDER BY id", ids)


def assert_within_rate(starts: list[float], count: float, per_second: float) -> None:
    """A token bucket of `count` tokens refilled at `per_second`: any window of starts
    [t_i, t_j] holds at most count + per_second * (t_j - t_i) of them."""
    ts = sorted(starts)
    for i in range(len(ts)):
        for j in range(i, len(ts)):
            allowed = count + per_second * (ts[j] - ts[i]) + 1e-6
            assert j - i + 1 <= allowed, \
                f"{j - i + 1} starts within {ts[j] - ts[i]:.3f}s (allowed {allowed:.2f}): " \
                f"{[round(x - ts[0], 3) for x in ts]}"


# -- a queue's cap holds across every service on the host ---------------------------------
@pytest.mark.parametrize("order", ["enqueued_while_serving", "backlog_before_start"])
def test_queue_cap_holds_across_two_services(tmp_path: Path, order: str) -> None:
    # Both services look for work every 50 ms: each has 2 free slots of its own all along,
    # so only the host-wide count keeps the total at 2.
    cfg = write_config(tmp_path, "[queues.capped]\nconcurrency = 2\n", jobrun_extra="poll = 0.05")
    store = str(tmp_path / "jobs.db")
    app = open_app(cfg)
    assert os.path.exists(app.store.path)  # the store exists: the ledger goes in beside it
    db = Reader(store)
    db.conn.execute("CREATE TABLE ledger (job_id INTEGER, pid INTEGER, t0 REAL, t1 REAL)")
    procs: list[ServiceProc] = []
    n = 16
    try:
        def start_both() -> None:
            for i in range(2):
                procs.append(ServiceProc(cfg, tmp_path / f"service-{i}.log"))
            for p in procs:
                wait_serving(store, p)
                # Fully started (its limits in force): the last line of its start-up.
                wait_for(lambda p=p: " serving " in p.log_text(), 20, "the start-up log line")

        if order == "backlog_before_start":
            jobs = app.enqueue_many([t.ledger_span.call(0.15) for _ in range(n)])
            start_both()
        else:
            start_both()
            jobs = app.enqueue_many([t.ledger_span.call(0.15) for _ in range(n)])
        ids = [j.id for j in jobs]
        wait_for(lambda: all_done(app, ids), 30, "every job to finish")

        ledger = db.all("SELECT job_id, pid, t0, t1 FROM ledger")
        assert sorted(r[0] for r in ledger) == ids  # each ran once
        by_pid = Counter(r[1] for r in ledger)
        assert set(by_pid) <= {p.pid for p in procs}
        print("jobs by service pid:", dict(by_pid))
        top = max_overlap([(r[2], r[3]) for r in ledger])
        assert top <= 2, f"{top} jobs of a queue capped at 2 ran at once (by service: {by_pid})"
        assert top == 2
        assert all(r[1:3] == ("succeeded", 1) for r in rows(app, ids))
        assert all(p.alive() for p in procs)
    finally:
        for p in procs:
            p.kill()
        db.close()


# -- per-key concurrency -------------------------------------------------------------------
@pytest.mark.parametrize("order", ["enqueued_while_serving", "backlog_before_start"])
def test_key_concurrency_caps_each_key(tmp_path: Path, order: str) -> None:
    cfg = write_config(tmp_path, "[queues.keyed]\nconcurrency = 8\n")
    app = open_app(cfg)
    t.reset_keyed()
    calls = [t.keyed.call(tenant_id=k, seconds=0.15) for _ in range(6) for k in "ab"]
    jobs = app.enqueue_many(calls) if order == "backlog_before_start" else []
    with served(app):
        if not jobs:
            jobs = app.enqueue_many(calls)
        ids = [j.id for j in jobs]
        wait_for(lambda: all_done(app, ids), 20, "every job to finish")
    assert max(t.KEYED["max"].values()) <= 2, \
        f"key_concurrency=2 exceeded: {t.KEYED['max']} at once per tenant"
    assert t.KEYED["max"] == {"a": 2, "b": 2}
    assert t.KEYED["total_max"] > 2  # the keys ran side by side
    # Held back by its key's cap, a job waits without counting an attempt.
    assert all(r[1:3] == ("succeeded", 1) for r in rows(app, ids))


def test_key_concurrency_holds_on_any_queue_the_job_is_sent_to(tmp_path: Path) -> None:
    """`enqueue(..., queue="other")` is part of the contract; the job keeps its task's
    concurrency key, so the task's per-key cap must hold there too."""
    cfg = write_config(tmp_path, "[queues.other]\nconcurrency = 8\n")
    app = open_app(cfg)
    t.reset_keyed()
    with served(app):
        jobs = [app.enqueue(t.keyed.name, kwargs={"tenant_id": "a", "seconds": 0.15},
                            queue="other") for _ in range(6)]
        ids = [j.id for j in jobs]
        wait_for(lambda: all_done(app, ids), 20, "every job to finish")
    assert t.KEYED["max"]["a"] <= 2, \
        f"key_concurrency=2 ignored on queue 'other': {t.KEYED['max']['a']} ran at once"


# -- rate limits ---------------------------------------------------------------------------
def started(app: jobrun.App, ids: list[int]) -> list[float]:
    rs = rows(app, ids)
    assert all(r[1:3] == ("succeeded", 1) for r in rs), rs  # held back: no attempt counted
    return [r[3] for r in rs]


def test_queue_rate_limit_from_toml(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, '[queues.qrated]\nconcurrency = 8\nrate_limit = "5/s"\n')
    app = open_app(cfg)
    with served(app):
        ids = [j.id for j in app.enqueue_many([t.queue_rated.call() for _ in range(12)])]
        wait_for(lambda: all_done(app, ids), 20, "every job to finish")
    ts = started(app, ids)
    print("starts", [round(x - min(ts), 3) for x in sorted(ts)])
    assert_within_rate(ts, 5, 5.0)
    span = max(ts) - min(ts)
    assert span < (12 - 5) / 5 + 1.0, f"over-throttled: {span:.2f}s"


def test_task_rate_limit_holds_only_that_task(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "[queues.trated]\nconcurrency = 8\n")
    app = open_app(cfg)
    with served(app):
        rated = [j.id for j in app.enqueue_many([t.task_rated.call() for _ in range(12)])]
        free = [j.id for j in app.enqueue_many([t.trated_free.call() for _ in range(10)])]
        wait_for(lambda: all_done(app, rated + free), 20, "every job to finish")
    ts = started(app, rated)
    assert_within_rate(ts, 5, 5.0)
    assert max(ts) - min(ts) < (12 - 5) / 5 + 1.0
    # The other task of the queue does not wait behind the rated one.
    fs = started(app, free)
    assert max(fs) - min(ts) < 0.5, [round(x - min(ts), 3) for x in fs]


def test_key_rate_limit_is_per_key(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "[queues.krated]\nconcurrency = 8\n")
    app = open_app(cfg)
    with served(app):
        jobs = app.enqueue_many([t.key_rated.call(tenant_id=k) for _ in range(9) for k in "ab"])
        ids = [j.id for j in jobs]
        wait_for(lambda: all_done(app, ids), 20, "every job to finish")
    by_key: dict[str, list[float]] = {"a": [], "b": []}
    for j, ts in zip(jobs, started(app, ids)):
        by_key[app.store.get(j.id).kwargs["tenant_id"]].append(ts)  # type: ignore[union-attr]
    for ts in by_key.values():
        assert_within_rate(ts, 5, 5.0)
    everything = sorted(by_key["a"] + by_key["b"])
    # Each key has its own bucket: more start at once than one key's burst, and both keys
    # are done in about the time one needs.
    assert sum(1 for x in everything if x - everything[0] < 0.15) > 5
    assert everything[-1] - everything[0] < (9 - 5) / 5 + 1.0


# -- fairness ------------------------------------------------------------------------------
def test_round_robin_fairness_between_keys(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "[queues.fair]\nconcurrency = 4\n")
    app = open_app(cfg)
    a = app.enqueue_many([t.fair.call(tenant_id="A") for _ in range(5000)])
    b = app.enqueue_many([t.fair.call(tenant_id="B") for _ in range(10)])
    b_ids = [j.id for j in b]
    with served(app):
        wait_for(lambda: all_done(app, b_ids), 30, "tenant B's jobs to finish")
    b_rows = rows(app, b_ids)
    assert all(r[1:3] == ("succeeded", 1) for r in b_rows), b_rows
    last_b = max(r[3] for r in b_rows)
    a_before = app.store.read("SELECT count(*) FROM jobs WHERE id BETWEEN ? AND ? AND "
                              "started_at IS NOT NULL AND started_at <= ?",
                              (a[0].id, a[-1].id, last_b))[0][0]
    # B did not wait for A's backlog: all of B started before half of A had.
    print(f"A jobs started before B's last: {a_before}")
    assert a_before < 2500, f"{a_before} of A's jobs started before B's last"


def test_a_concurrency_key_formats_from_positional_arguments(app: jobrun.App) -> None:
    @app.task(concurrency_key="tenant:{tenant_id}", key_concurrency=1)
    def per_tenant(tenant_id: int, n: int) -> int:
        return n

    job = per_tenant.enqueue(7, 1)
    assert app.store.read("SELECT ckey FROM jobs WHERE id = ?", (job.id,))[0][0] == "tenant:7"
