"""The store against a model of itself: hypothesis drives the store contract (enqueue with
keys, priorities and delays; acquire rounds by task; outcomes with fresh and stale tokens;
rescue; cancel; retry; pause; prune; the clock moving) and a small pure model of what the
contract promises, and checks after every step that the two agree: states, attempts, who
holds what, key de-duplication, fencing, priority order, due times.

Short by default; `--long` runs it many times longer. It runs against every store the
contract suite covers (tests/store/test_contract.py's IMPLEMENTATIONS).
"""

from __future__ import annotations

import tempfile
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from jobrun import catalog, enqueue
from jobrun.config import Settings
from jobrun.model import Outcome
from jobrun.store import open_store
from support.postgres import fresh_store_url, require_server

#: The stores the contract suite covers (tests/store/test_contract.py).
IMPLEMENTATIONS = ["sqlite", "postgres"]

TASKS = ("m:a", "m:b", "m:c")
HOLDERS = ("h1", "h2")
ACTIVE = ("scheduled", "queued", "running", "retrying")
T0 = 1_000_000.0


@dataclass
class MJob:
    id: int
    task: str
    priority: int
    key: str | None
    max_attempts: int
    run_at: float
    state: str
    attempts: int = 0
    holder: str | None = None
    token: int | None = None
    finished_at: float | None = None


@dataclass
class Model:
    jobs: dict[int, MJob] = field(default_factory=dict)
    paused: bool = False

    def active_key(self, task: str, key: str) -> MJob | None:
        for j in self.jobs.values():
            if j.task == task and j.key == key and j.state in ACTIVE:
                return j
        return None

    def promote(self, now: float) -> None:
        for j in self.jobs.values():
            if j.state in ("scheduled", "retrying") and j.run_at <= now:
                j.state = "queued"


class StoreModel(RuleBasedStateMachine):
    impl = "sqlite"  # which store each example opens (set by the test)

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.pg: AbstractContextManager[str] | None = None
        if self.impl == "postgres":  # a schema of its own per example
            self.pg = fresh_store_url()
            self.store = open_store(self.pg.__enter__())
        else:
            self.store = open_store(str(Path(self.dir.name) / "jobs.db"))
        self.model = Model()
        self.now = T0
        self.stale: list[tuple[int, int]] = []  # (job id, token) of attempts taken back

    @initialize()
    def start(self) -> None:
        self.now = T0

    def teardown(self) -> None:
        self.store.close()
        if self.pg is not None:
            self.pg.__exit__(None, None, None)
        self.dir.cleanup()

    # -- producers -----------------------------------------------------------------------
    @rule(task=st.sampled_from(TASKS), priority=st.integers(0, 2),
          key=st.sampled_from([None, "k1", "k2"]), delay=st.sampled_from([None, 0.0, 5.0]),
          max_attempts=st.integers(1, 3))
    def enqueue(self, task: str, priority: int, key: str | None, delay: float | None,
                max_attempts: int) -> None:
        d = catalog.resolve(None, None, None, Settings())
        new = enqueue.new_job(task, [], {}, {"priority": priority, "key": key, "delay": delay,
                                             "max_attempts": max_attempts}, self.now, d)
        (job_id,) = self.store.enqueue([new], now=self.now)
        existing = self.model.active_key(task, key) if key is not None else None
        if existing is not None:
            assert job_id == existing.id, "a key must de-duplicate onto the unfinished job"
            return
        assert job_id not in self.model.jobs and job_id > max(self.model.jobs, default=0), \
            "ids are never reused and only go up"
        run_at = self.now + (delay or 0.0)
        self.model.jobs[job_id] = MJob(job_id, task, priority, key, max_attempts, run_at,
                                       "scheduled" if run_at > self.now else "queued")

    # -- the worker's round ----------------------------------------------------------------
    @rule(holder=st.sampled_from(HOLDERS), n=st.integers(1, 3),
          tasks=st.sets(st.sampled_from(TASKS), min_size=1))
    def acquire(self, holder: str, n: int, tasks: set[str]) -> None:
        r = self.store.acquire_round([], {"default": n}, holder, now=self.now, lease=600,
                                     tasks=frozenset(tasks))
        self.model.promote(self.now)
        expected = [] if self.model.paused else sorted(
            (j for j in self.model.jobs.values() if j.state == "queued" and j.task in tasks),
            key=lambda j: (-j.priority, j.id))[:n]
        assert [c.id for c in r.claims] == [j.id for j in expected], "claim order"
        for c, j in zip(r.claims, expected):
            j.state, j.holder, j.token = "running", holder, c.token
            j.attempts += 1
            assert c.attempt == j.attempts

    @precondition(lambda self: any(j.state == "running" for j in self.model.jobs.values()))
    @rule(data=st.data(), what=st.sampled_from(["succeeded", "retrying", "dead", "released"]))
    def finish(self, data: st.DataObject, what: str) -> None:
        running = sorted(j.id for j in self.model.jobs.values() if j.state == "running")
        j = self.model.jobs[data.draw(st.sampled_from(running))]
        assert j.token is not None
        err = None if what in ("succeeded", "released") else \
            {"at": self.now, "type": "E", "message": "x", "attempt": j.attempts}
        o = Outcome(j.id, j.token, what, result="1" if what == "succeeded" else None,
                    run_at=self.now + 3 if what == "retrying" else None,
                    error=err)  # type: ignore[arg-type]
        assert self.store.record([o], now=self.now) == 1, "a fresh token records"
        j.holder, j.token = None, None
        if what == "released":
            j.state, j.attempts = "queued", j.attempts - 1
        elif what == "retrying":
            j.state, j.run_at = "retrying", self.now + 3
        else:
            j.state, j.finished_at = what, self.now

    @precondition(lambda self: bool(self.stale))
    @rule(data=st.data())
    def stale_token(self, data: st.DataObject) -> None:
        job_id, token = data.draw(st.sampled_from(self.stale))
        o = Outcome(job_id, token, "succeeded", result="666")
        assert self.store.record([o], now=self.now) == 0, "a stale token records nothing"
        assert not self.store.extend_lease(job_id, token, now=self.now, lease=600)
        j = self.model.jobs.get(job_id)
        if j is not None and j.state == "cancelled" and j.token == token:
            j.holder, j.token = None, None  # a cancelled attempt ended: its job let go

    @rule(holder=st.sampled_from(HOLDERS))
    def rescue(self, holder: str) -> None:
        rows = self.store.rescue_holder(holder, "worker lost", now=self.now)
        mine = [j for j in self.model.jobs.values() if j.state == "running" and j.holder == holder]
        assert sorted(r[0] for r in rows) == sorted(j.id for j in mine)
        for j in mine:
            assert j.token is not None
            self.stale.append((j.id, j.token))
            dead = j.attempts >= j.max_attempts
            j.state = "dead" if dead else "queued"
            j.finished_at = self.now if dead else None
            j.holder, j.token = None, None
        for j in self.model.jobs.values():  # its cancelled attempts ended with it
            if j.state == "cancelled" and j.holder == holder:
                j.holder, j.token = None, None

    # -- operators -------------------------------------------------------------------------
    @precondition(lambda self: bool(self.model.jobs))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        j = self.model.jobs[data.draw(st.sampled_from(sorted(self.model.jobs)))]
        before = self.store.cancel(j.id, now=self.now)
        assert before == j.state
        if j.state in ACTIVE:
            if j.state == "running" and j.token is not None:
                self.stale.append((j.id, j.token))  # the holder lets go when it ends
                j.state, j.finished_at = "cancelled", self.now
            else:
                j.state, j.holder, j.token, j.finished_at = "cancelled", None, None, self.now

    @precondition(lambda self: bool(self.model.jobs))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        j = self.model.jobs[data.draw(st.sampled_from(sorted(self.model.jobs)))]
        got = self.store.retry(j.id, now=self.now)
        holder = self.model.active_key(j.task, j.key) if j.key is not None else None
        ok = j.state in ("dead", "cancelled", "retrying") and (holder is None or holder is j) \
            and j.holder is None  # not while a cancelled attempt of it still runs
        assert got == ([j.id] if ok else [])
        if ok:
            if j.state != "retrying":
                j.attempts = 0
            j.state, j.run_at, j.finished_at = "queued", self.now, None

    @rule(paused=st.booleans())
    def pause(self, paused: bool) -> None:
        self.store.set_paused("default", paused)
        self.model.paused = paused

    @rule(age=st.sampled_from([0.0, 2.0, 10.0]))
    def prune(self, age: float) -> None:
        n = self.store.prune(self.now - age)
        newest = max(self.model.jobs, default=None)
        gone = [j.id for j in self.model.jobs.values()
                if j.state in ("succeeded", "dead", "cancelled") and j.finished_at is not None
                and j.finished_at < self.now - age and j.id != newest]
        assert n == len(gone)
        for i in gone:
            del self.model.jobs[i]

    @rule(dt=st.sampled_from([0.5, 1.0, 4.0]))
    def tick(self, dt: float) -> None:
        self.now += dt

    # -- agreement -------------------------------------------------------------------------
    @invariant()
    def agree(self) -> None:
        stored = {r.id: r for r in self.store.list_jobs(limit=10_000)}
        assert set(stored) == set(self.model.jobs)
        for i, m in self.model.jobs.items():
            r = stored[i]
            assert (r.state.value, r.attempts, r.holder) == (m.state, m.attempts, m.holder), \
                (i, r, m)
            if m.state == "running":  # a finished job may keep its last token: it fences nothing
                assert r.token == m.token, (i, r, m)
        keys = [(m.task, m.key) for m in self.model.jobs.values()
                if m.key is not None and m.state in ACTIVE]
        assert len(keys) == len(set(keys)), "a key is unique per task among unfinished jobs"


@pytest.mark.torture
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_the_store_agrees_with_its_model(long: bool, impl: str) -> None:
    if impl == "postgres":
        require_server()  # skips (or fails with $CI set) without a server
    StoreModel.impl = impl
    StoreModel.TestCase.settings = settings(
        max_examples=400 if long else 25, stateful_step_count=60 if long else 30,
        deadline=None, suppress_health_check=[HealthCheck.too_slow])
    StoreModel.TestCase().runTest()
