"""Durable workflows (issue 12): replay, steps, sleeps, events, children, cancel, inline mode,
bad input, and what `show`, `ls` and `explain` say. A real service runs in this process
(`app.start()`) on a real store file; the CLI runs as a subprocess. Real-process crash
tests are in test_workflows_crash.py, the kill storm in torture/test_workflow_storm.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jobrun
import jobrun.testing
from conftest import run_cli, wait_for
from jobrun.config import QueueConfig, Settings
from jobrun.errors import NotInWorkflow
from jobrun.store import open_store
from support.postgres import any_store

FAST = Settings(poll=0.05)


@pytest.fixture(params=["sqlite", "postgres"])
def store_path(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test on both stores: a SQLite file, and a PostgreSQL schema of its own."""
    with any_store(request.param, str(tmp_path)) as where:
        yield where


@pytest.fixture
def app(store_path: str) -> Iterator[jobrun.App]:
    a = jobrun.App(store_path, settings=FAST)
    yield a
    a.close()


def rows(store_path: str, sql: str) -> list[tuple[Any, ...]]:
    """A read of the test's own, on either store."""
    store = open_store(store_path)
    try:
        return [tuple(r) for r in store.read(sql)]  # type: ignore[attr-defined]
    finally:
        store.close()


def waiting(app: jobrun.App, job_id: int) -> bool:
    """The workflow is suspended (scheduled, with a step it waits on)."""
    rec = app.store.get(job_id)
    return rec is not None and rec.state.value == "scheduled" and \
        app.store.waiting_step(job_id) is not None


# -- replay ----------------------------------------------------------------------------------
def test_recorded_steps_do_not_run_again_on_replay(app: jobrun.App) -> None:
    # Given: a workflow of two steps, a sleep, and a third step.
    ran: list[str] = []
    bodies: list[int] = []

    @app.step
    def fetch(n: int) -> dict[str, int]:
        ran.append("fetch")
        return {"n": n}

    @app.step(max_attempts=3)
    def double(d: dict[str, int]) -> int:
        ran.append("double")
        return d["n"] * 2

    @app.step
    def publish(x: int) -> str:
        ran.append("publish")
        return f"published {x}"

    @app.workflow(max_attempts=1)
    def pipeline(n: int) -> list[Any]:
        bodies.append(n)
        d = fetch(n)
        x = double(d)
        jobrun.sleep(0.2)
        return [d, x, publish(x)]

    # When: it runs on a service (the body runs twice: before and after the sleep).
    app.start()
    job = pipeline.enqueue(21)
    assert job.result(timeout=10) == [{"n": 21}, 42, "published 42"]
    # Then: every step ran once; the resume was not an attempt.
    assert ran == ["fetch", "double", "publish"]
    assert bodies == [21, 21]
    rec = app.store.get(job.id)
    assert rec is not None and rec.attempts == 1
    steps = app.store.steps(job.id)
    assert [(s.name, s.state, s.attempts) for s in steps] == [
        ("fetch", "succeeded", 1), ("double", "succeeded", 1), ("jobrun.sleep", "succeeded", 0),
        ("publish", "succeeded", 1)]


def test_a_step_outside_a_workflow_is_a_plain_call(app: jobrun.App) -> None:
    @app.step(max_attempts=3)
    def plus(a: int) -> int:
        return a + 1

    assert plus(1) == 2
    with pytest.raises(RuntimeError, match="only in a workflow body") as raised:
        jobrun.sleep(1)
    assert isinstance(raised.value, NotInWorkflow)  # a JobrunError: a misuse, not a bug
    with pytest.raises(RuntimeError, match="only in a workflow body"):
        jobrun.wait_event("x")
    with pytest.raises(RuntimeError, match="only in a workflow body"):
        jobrun.gather([])


def test_a_replay_calling_another_step_is_non_deterministic(app: jobrun.App) -> None:
    # Given: version 1 of a workflow ran its first step and waits for an event.
    @app.step
    def charge() -> str:
        return "charged"

    @app.step
    def reserve() -> str:
        return "reserved"

    @app.workflow(name="shop:order", max_attempts=5)
    def order_v1() -> str:
        charge()
        jobrun.wait_event("nd:go")
        return "v1"

    app.start()
    job = order_v1.enqueue()
    wait_for(lambda: waiting(app, job.id), 10, "the workflow to wait")

    # When: a deploy reorders its steps, and the workflow resumes.
    @app.workflow(name="shop:order", max_attempts=5)
    def order_v2() -> str:
        reserve()
        charge()
        return "v2"

    app.send_event("nd:go")
    # Then: it stops with NonDeterministic naming both steps (no retry could help).
    with pytest.raises(jobrun.JobFailed):
        job.result(timeout=10)
    rec = app.store.get(job.id)
    assert rec is not None and rec.state.value == "dead"
    err = rec.errors[-1]
    assert err["type"] == "NonDeterministic"
    assert "'charge'" in err["message"] and "'reserve'" in err["message"]
    # And: `show` lists its wait as over, not as waiting (the workflow waits for nothing).
    shown = json.loads(run_cli("show", str(job.id), "--json", "--store", app.store_path).stdout)
    assert [(s["name"], s["state"]) for s in shown["steps"]] == [
        ("charge", "succeeded"), ("jobrun.wait_event", "abandoned")]
    assert "until" not in shown["steps"][1]
    text = run_cli("show", str(job.id), "--store", app.store_path).stdout
    assert "abandoned" in text and "waiting" not in text


def test_step_failed_after_its_attempts_first_run_and_replay_alike(app: jobrun.App) -> None:
    tries: list[int] = []

    @app.step(max_attempts=3, retry_base=0.01, retry_cap=0.02)
    def flaky() -> None:
        tries.append(1)
        raise ValueError("card declined")

    seen: list[str] = []

    @app.workflow(max_attempts=1)
    def pay() -> str:
        try:
            flaky()
        except jobrun.StepFailed as exc:
            seen.append(str(exc))
        jobrun.sleep(0.05)  # a replay after this meets the recorded failure again
        return "handled"

    @app.workflow(max_attempts=3)
    def pay_unhandled() -> str:
        flaky()
        return "never"

    app.start()
    job = pay.enqueue()
    assert job.result(timeout=10) == "handled"
    assert len(tries) == 3  # retried with backoff, the workflow waiting meanwhile
    assert len(seen) == 2 and all("card declined" in s and "3 attempt" in s for s in seen)
    (step, _) = app.store.steps(job.id)
    assert (step.state, step.attempts, (step.error or {}).get("type")) == \
        ("failed", 3, "ValueError")
    rec = app.store.get(job.id)
    assert rec is not None and rec.attempts == 1  # step retries are not workflow attempts

    other = pay_unhandled.enqueue()
    with pytest.raises(jobrun.JobFailed):
        other.result(timeout=10)
    rec = app.store.get(other.id)
    assert rec is not None and rec.errors[-1]["type"] == "StepFailed"
    assert rec.attempts == 1  # its replay would fail the same way: dead at once


def test_key_starts_a_workflow_once(app: jobrun.App) -> None:
    @app.workflow
    def onboard(user: int) -> int:
        jobrun.wait_event(f"verified:{user}")
        return user

    a = onboard.options(key="user-7").enqueue(7)
    b = onboard.options(key="user-7").enqueue(7)
    assert a.id == b.id


def test_an_enqueue_in_the_body_is_recorded(app: jobrun.App) -> None:
    @app.task
    def notify(user: int) -> str:
        return f"mail {user}"

    @app.workflow
    def signup(user: int) -> int:
        child = notify.enqueue(user)
        jobrun.sleep(0.1)
        return child.id

    app.start()
    job = signup.enqueue(3)
    child_id = job.result(timeout=10)
    assert app.store.children(job.id) == [child_id]  # the replay did not enqueue again
    assert app.store.parents([child_id]) == {child_id: job.id}
    assert app.job(child_id).result(timeout=10) == "mail 3"


# -- sleep -----------------------------------------------------------------------------------
def test_sleep_waits_without_a_slot(store_path: str) -> None:
    # One slot: ten workflows all asleep at once (a sleep that kept its slot would let only
    # one sleep at a time). Each sleeps 3 s: room for all ten to get there on a busy machine.
    app = jobrun.App(store_path, settings=Settings(poll=0.05, queues={
        "default": QueueConfig("default", concurrency=1)}))
    try:
        @app.workflow
        def nap(i: int) -> int:
            jobrun.sleep(3.0)
            return i

        app.start()
        jobs = [nap.enqueue(i) for i in range(10)]
        wait_for(lambda: all(waiting(app, j.id) for j in jobs), 10, "all ten to sleep")
        assert [j.result(timeout=10) for j in jobs] == list(range(10))
    finally:
        app.close()


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), ("5", TypeError), (None, TypeError),
                                      (float("nan"), ValueError), (True, TypeError)])
def test_sleep_refuses_bad_values(app: jobrun.App, bad: Any, exc: type[Exception]) -> None:
    got: list[str] = []

    @app.workflow
    def snooze() -> str:
        try:
            jobrun.sleep(bad)
        except exc:  # InvalidJob, jobrun's refusal, is a TypeError
            got.append(exc.__name__)
        return "ok"

    with jobrun.testing.inline(app):
        assert snooze.enqueue().result(timeout=1) == "ok"
    assert got == [exc.__name__]


# -- events ----------------------------------------------------------------------------------
def test_events_before_after_twice_and_never(app: jobrun.App) -> None:
    @app.workflow
    def approve(name: str, timeout: float | None) -> Any:
        return jobrun.wait_event(name, timeout=timeout)

    app.start()
    # Before: sent before the wait began.
    app.send_event("approved:1", {"by": "ops"})
    assert approve.enqueue("approved:1", None).result(timeout=10) == {"by": "ops"}
    # After: the workflow waits, then the event comes.
    after = approve.enqueue("approved:2", None)
    wait_for(lambda: waiting(app, after.id), 10, "the wait")
    app.send_event("approved:2", [1, 2])
    assert after.result(timeout=10) == [1, 2]
    # Twice: two waits take one event each.
    w1, w2 = approve.enqueue("approved:3", None), approve.enqueue("approved:3", None)
    wait_for(lambda: waiting(app, w1.id) and waiting(app, w2.id), 10, "both waits")
    app.send_event("approved:3", "a")
    app.send_event("approved:3", "b")
    assert sorted([w1.result(timeout=10), w2.result(timeout=10)]) == ["a", "b"]
    # Never: the timeout gives None.
    assert approve.enqueue("approved:never", 0.3).result(timeout=10) is None
    taken = rows(app.store_path, "SELECT name, taken_by FROM events ORDER BY id")
    assert [t[0] for t in taken] == ["approved:1", "approved:2", "approved:3", "approved:3"]
    assert all(t[1] is not None for t in taken)


def test_an_event_payload_must_be_json(app: jobrun.App) -> None:
    with pytest.raises(TypeError):
        app.send_event("x", {1, 2})
    with pytest.raises(TypeError):
        app.send_event("", None)
    with pytest.raises(TypeError, match="event name"):
        app.send_event(" \u3000 ", None)  # whitespace only
    with pytest.raises(TypeError, match=r"payload of event x: 17\.0 MiB .* 16 MiB limit"):
        app.send_event("x", "x" * (17 * 1024 * 1024))  # as enqueue's payload limit
    assert app.send_event("x", {"ok": True}) > 0
    assert rows(app.store_path, "SELECT name, payload FROM events") == [("x", '{"ok":true}')]


@pytest.mark.parametrize("store_path", ["sqlite"], indirect=True)  # PostgreSQL: test_presence
def test_send_event_in_a_transaction_that_rolls_back_stores_nothing(
        app: jobrun.App, store_path: str) -> None:
    app.send_event("warmup")  # the store exists
    # Another process sends an event in its own transaction, then rolls it back.
    code = (
        "import apsw, jobrun, sys\n"
        "conn = apsw.Connection(sys.argv[1]); conn.set_busy_timeout(10000)\n"
        "app = jobrun.App(sys.argv[1])\n"
        "conn.execute('BEGIN IMMEDIATE')\n"
        "app.send_event('refund:9', {'ok': 1}, connection=conn)\n"
        "conn.execute(sys.argv[2])\n")
    for end in ("ROLLBACK", "COMMIT"):
        subprocess.run([sys.executable, "-c", code, store_path, end], check=True, timeout=60)
    assert [r[0] for r in rows(store_path, "SELECT name FROM events ORDER BY id")] == [
        "warmup", "refund:9"]


# -- children --------------------------------------------------------------------------------
def test_gather_returns_results_in_order_and_a_dead_child_raises_job_failed(
        app: jobrun.App) -> None:
    @app.task(max_attempts=1)
    def square(x: int) -> int:
        if x < 0:
            raise jobrun.Permanent("negative")
        return x * x

    @app.workflow(max_attempts=1)
    def report(xs: list[int]) -> Any:
        try:
            return jobrun.gather([square.call(x) for x in xs])
        except jobrun.JobFailed as exc:
            return f"failed: {exc}"

    app.start()
    ok = report.enqueue([3, 1, 2])
    assert ok.result(timeout=10) == [9, 1, 4]
    kids = app.store.children(ok.id)
    assert len(kids) == 3
    trace = app.store.get(ok.id).trace_id  # type: ignore[union-attr]
    assert {app.store.get(k).trace_id for k in kids} == {trace}  # type: ignore[union-attr]
    bad = report.enqueue([1, -1, 2])
    out = bad.result(timeout=10)
    assert out.startswith("failed: 1 of 3 children failed") and "negative" in out
    assert report.enqueue([]).result(timeout=10) == []


def test_cancelling_a_workflow_cancels_its_unfinished_children(
        app: jobrun.App) -> None:
    @app.task(queue="held")
    def slow(i: int) -> int:
        return i

    @app.workflow
    def parent() -> Any:
        return jobrun.gather([slow.call(i) for i in range(3)])

    app.store.set_paused("held", True)  # the children stay queued
    app.start()
    job = parent.enqueue()
    wait_for(lambda: waiting(app, job.id), 10, "the parent to wait")
    kids = app.store.children(job.id)
    assert len(kids) == 3
    assert app.store.cancel(job.id, now=jobrun.clock.now()) == "scheduled"
    assert {app.job(k).state.value for k in kids} == {"cancelled"}


def test_a_cancelled_child_wakes_its_parent_with_job_failed(app: jobrun.App) -> None:
    @app.task(queue="held2")
    def slow(i: int) -> int:
        return i

    @app.workflow(max_attempts=1)
    def parent() -> Any:
        try:
            return jobrun.gather([slow.call(i) for i in range(2)])
        except jobrun.JobFailed as exc:
            return str(exc)

    app.store.set_paused("held2", True)
    app.start()
    job = parent.enqueue()
    wait_for(lambda: waiting(app, job.id), 10, "the parent to wait")
    for k in app.store.children(job.id):
        app.store.cancel(k, now=jobrun.clock.now())
    assert "cancelled" in job.result(timeout=10)


def test_retrying_a_cancelled_workflow_retries_its_cancelled_children(
        app: jobrun.App) -> None:
    # Given: a workflow waiting on 3 children (held in a paused queue), then cancelled.
    @app.task(queue="held-retry")
    def slow(i: int) -> int:
        return i * 10

    @app.workflow(max_attempts=1)
    def parent() -> Any:
        return jobrun.gather([slow.call(i) for i in range(3)])

    app.store.set_paused("held-retry", True)
    app.start()
    job = parent.enqueue()
    wait_for(lambda: waiting(app, job.id), 10, "the parent to wait")
    kids = app.store.children(job.id)
    app.store.cancel(job.id, now=jobrun.clock.now())
    assert {app.job(k).state.value for k in kids} == {"cancelled"}
    # When: it is retried and the queue runs.
    ids = app.store.retry(job.id, now=jobrun.clock.now())
    app.store.set_paused("held-retry", False)
    # Then: its children went back with it, and it succeeds with their results.
    assert sorted(ids) == sorted([job.id, *kids])
    assert job.result(timeout=20) == [0, 10, 20]
    assert app.store.children(job.id) == kids  # the same children, none started anew


def test_retrying_a_dead_workflow_retries_its_dead_child_only(app: jobrun.App) -> None:
    # Given: a workflow whose gather failed (one child died on its first run).
    runs: list[int] = []

    @app.task(max_attempts=1)
    def flaky(i: int) -> int:
        runs.append(i)
        if i == 1 and runs.count(1) == 1:
            raise ValueError("first time")
        return i

    @app.workflow(max_attempts=1)
    def parent() -> Any:
        return jobrun.gather([flaky.call(i) for i in range(3)])

    app.start()
    job = parent.enqueue()
    wait_for(lambda: app.job(job.id).state.value == "dead", 20, "the parent to die")
    # When: it is retried.
    app.store.retry(job.id, now=jobrun.clock.now())
    # Then: only the dead child runs again; the gather waits on it and succeeds.
    assert job.result(timeout=20) == [0, 1, 2]
    assert sorted(runs) == [0, 1, 1, 2]


def test_a_workflow_called_inside_another_is_refused(app: jobrun.App) -> None:
    @app.workflow
    def inner() -> int:
        return 1

    @app.workflow(max_attempts=1)
    def outer() -> str:
        try:
            inner()
        except RuntimeError as exc:
            return str(exc)
        return "ran"

    with jobrun.testing.inline(app):
        msg = outer.enqueue().result(timeout=1)
    assert "called directly inside workflow" in msg and "gather" in msg


# -- bad input -------------------------------------------------------------------------------
def test_a_step_value_that_is_not_json_fails_the_attempt(app: jobrun.App) -> None:
    @app.step
    def keep(x: Any) -> Any:
        return x

    @app.workflow(max_attempts=2)
    def bad_arg() -> Any:
        return keep({1, 2})

    @app.workflow(max_attempts=2)
    def bad_result() -> Any:
        keep.fn  # noqa: B018 - the step itself is fine; its return value is not JSON
        return keep_set()

    @app.step
    def keep_set() -> Any:
        return {1, 2}

    @app.workflow(max_attempts=2)
    def caught() -> Any:
        try:
            return keep({1, 2})
        except TypeError as exc:  # a TypeError at the call, as the issue says
            return f"caught: {exc}"

    with jobrun.testing.inline(app):
        for wf in (bad_arg, bad_result):
            job = wf.enqueue()
            assert job.state.value == "dead"
            rec = app.store.get(job.id)
            # The issue: a TypeError at that call, the workflow retries like any failing task.
            assert rec is not None and rec.attempts == 2
            assert [e["type"] for e in rec.errors] == ["InvalidJob", "InvalidJob"]
            assert "is not JSON-serialisable" in rec.errors[0]["message"]
            assert issubclass(jobrun.InvalidJob, TypeError)
            assert app.store.steps(job.id) == []  # nothing recorded for a refused value
        assert caught.enqueue().result(timeout=1).startswith("caught: arguments of step keep")


def test_more_steps_than_the_maximum_ends_dead(app: jobrun.App) -> None:
    @app.step
    def tick(i: int) -> int:
        return i

    @app.workflow(max_steps=5)
    def loop() -> None:
        for i in range(10):
            tick(i)

    with jobrun.testing.inline(app):
        job = loop.enqueue()
    rec = app.store.get(job.id)
    assert rec is not None and rec.state.value == "dead"
    assert "maximum of 5 steps" in rec.errors[-1]["message"]


# -- inline mode -----------------------------------------------------------------------------
def test_a_step_returns_the_same_json_value_on_the_first_run_and_on_a_replay(
        app: jobrun.App) -> None:
    # Given: a step returning a tuple, whose value each run of the body looks at.
    seen: list[tuple[str, str]] = []

    @app.step
    def pair() -> Any:
        return (1, ("a", 2.5))

    @app.workflow(max_attempts=1)
    def flow() -> Any:
        first = pair()
        seen.append((type(first).__name__, type(first[1]).__name__))
        jobrun.sleep(0.05)  # a service replays the body after this
        return first

    # When: it runs on a service (a first run, then a replay), then inline.
    app.start()
    assert flow.enqueue().result(timeout=20) == [1, ["a", 2.5]]
    app.stop()
    with jobrun.testing.inline(app):
        assert flow.enqueue().result(timeout=1) == [1, ["a", 2.5]]
    # Then: every run saw the JSON-decoded record (lists), the first run too.
    assert seen == [("list", "list")] * 3


def test_inline_mode_runs_a_workflow_to_its_end_here(app: jobrun.App) -> None:
    @app.task
    def score(i: int) -> int:
        return i * 10

    @app.workflow
    def refund(order: int) -> Any:
        jobrun.sleep(3 * 86400)
        ok = jobrun.wait_event(f"approved:{order}", timeout=7 * 86400)
        none = jobrun.wait_event("never-sent")
        return [ok, none, jobrun.gather([score.call(i) for i in range(3)])]

    with jobrun.testing.inline(app):
        app.send_event("approved:7", {"by": "ops"})
        job = refund.enqueue(7)
        assert job.state.value == "succeeded"
        assert job.result(timeout=1) == [{"by": "ops"}, None, [0, 10, 20]]


# -- what the CLI shows ----------------------------------------------------------------------
def test_show_cuts_a_long_workflow_to_its_first_and_last_steps(app: jobrun.App) -> None:
    # Given: a workflow of 30 recorded steps.
    @app.step
    def tick(i: int) -> int:
        return i

    @app.workflow
    def long() -> None:
        for i in range(30):
            tick(i)

    with jobrun.testing.inline(app):
        job = long.enqueue()
    # When: `show` prints it.
    text = run_cli("show", str(job.id), "--store", app.store_path).stdout
    # Then: the first and last 10 rows, a row counting the 10 between; --json keeps all.
    seqs = [int(line.split()[1]) for line in text.splitlines()
            if len(line.split()) > 2 and line.split()[1].isdigit() and "tick" in line]
    assert seqs == [*range(1, 11), *range(21, 31)]
    assert "10 more steps" in text and "steps (30)" in text
    shown = json.loads(run_cli("show", str(job.id), "--json", "--store", app.store_path).stdout)
    assert [s["seq"] for s in shown["steps"]] == list(range(1, 31))


def test_cli_send_event_show_ls_and_explain(app: jobrun.App, store_path: str) -> None:
    @app.task(queue="held3")
    def part(i: int) -> int:
        return i

    @app.step
    def first() -> str:
        return "one"

    @app.workflow
    def flow() -> Any:
        first()
        jobrun.sleep(5.0)  # long enough for a CLI start-up on a loaded machine to see it
        got = jobrun.wait_event("approved:7")
        return [got, jobrun.gather([part.call(i) for i in range(3)])]

    app.store.set_paused("held3", True)
    app.start()
    job = flow.enqueue()
    wait_for(lambda: waiting(app, job.id), 10, "the sleep")

    def explain() -> str:
        r = run_cli("explain", str(job.id), "--store", store_path)
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert "sleeping until" in explain()
    wait_for(lambda: "waiting for event approved:7" in explain(), 15, "the event wait")
    for cmd in (["ls"], ["show", str(job.id)]):  # a wait for ever reads as such, not as year 9999
        out = run_cli(*cmd, "--store", store_path).stdout
        assert "when woken" in out and "9999" not in out, out
    r = run_cli("send-event", "approved:7", '{"by": "cli"}', "--store", store_path)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: "waiting for 3 of 3 children" in explain(), 10, "the children wait")

    shown = json.loads(run_cli("show", str(job.id), "--json", "--store", store_path).stdout)
    assert [(s["name"], s["state"]) for s in shown["steps"]] == [
        ("first", "succeeded"), ("jobrun.sleep", "succeeded"),
        ("jobrun.wait_event", "succeeded"), ("jobrun.gather", "waiting")]
    assert all(isinstance(s["attempts"], int) for s in shown["steps"])
    kids = shown["children"]
    assert len(kids) == 3
    listed = json.loads(run_cli("ls", "--json", "--store", store_path).stdout)
    parents = {j["id"]: j["parent"] for j in listed}
    assert all(parents[k] == job.id for k in kids) and parents[job.id] is None
    text = run_cli("show", str(job.id), "--store", store_path).stdout
    assert "jobrun.gather" in text and "first" in text

    app.store.set_paused("held3", False)
    app.stop()
    app.start()  # a service reads paused queues at its rounds
    assert job.result(timeout=10) == [{"by": "cli"}, [0, 1, 2]]
    bad = run_cli("send-event", "x", "{not json", "--store", store_path)
    assert bad.returncode == 2 and "not JSON" in bad.stderr
    nan = run_cli("send-event", "x", "[NaN]", "--store", store_path)
    assert nan.returncode == 2 and "NaN is not JSON" in nan.stderr  # a typo like bad JSON
    blank = run_cli("send-event", "  ", "--store", store_path)
    assert blank.returncode != 0 and "event name" in blank.stderr
    assert rows(store_path, "SELECT count(*) FROM events WHERE name IN ('x', '  ')") == [(0,)]


def test_a_cancelled_running_workflow_records_nothing_more(app: jobrun.App) -> None:
    import threading

    entered, release = threading.Event(), threading.Event()
    after: list[str] = []

    @app.step
    def slow() -> str:
        entered.set()
        release.wait(10)
        return "late"

    @app.step
    def next_one() -> str:
        after.append("ran")
        return "no"

    @app.workflow
    def flow() -> str:
        slow()
        next_one()
        return "done"

    app.start()
    job = flow.enqueue()
    assert entered.wait(10)
    # When: it is cancelled while its step runs, and the step then returns.
    assert app.store.cancel(job.id, now=jobrun.clock.now()) == "running"
    release.set()
    # Then: the step's record is refused (fenced), the body stops there, it stays cancelled.
    app.stop()  # waits for the attempt to end
    assert app.store.steps(job.id) == [] and after == []
    assert app.job(job.id).state.value == "cancelled"


def test_a_drain_hands_a_workflow_back_at_its_next_step(app: jobrun.App) -> None:
    import time

    ran: list[int] = []

    @app.step
    def work(i: int) -> int:
        ran.append(i)
        time.sleep(0.05)
        return i

    @app.workflow(max_attempts=1)
    def long_flow() -> int:
        return sum(work(i) for i in range(60))

    app.start()
    job = long_flow.enqueue()
    wait_for(lambda: len(app.store.steps(job.id)) >= 3, 10, "a few steps")
    # When: the service drains with a short deadline, mid-workflow.
    app.stop(timeout=0.1)
    # Then: the workflow is handed back at a step boundary (not an attempt), and a new
    # service finishes it, each step once.
    rec = app.store.get(job.id)
    assert rec is not None and rec.state.value == "queued" and rec.attempts == 0
    assert len(app.store.steps(job.id)) < 60
    app.start()
    assert job.result(timeout=20) == sum(range(60))
    assert sorted(ran) == list(range(60))


def test_pruning_a_workflow_removes_its_steps_and_taken_events(app: jobrun.App) -> None:
    @app.step
    def one() -> int:
        return 1

    @app.workflow
    def short() -> Any:
        one()
        return jobrun.wait_event("prune:e")

    with jobrun.testing.inline(app):
        app.send_event("prune:e", 5)
        app.send_event("prune:other", 6)
        old = short.enqueue()
        newest = short.enqueue()  # the newest job is never pruned (ids are never reused)
    assert old.result(timeout=1) == 5 and newest.result(timeout=1) is None
    assert app.store.prune(jobrun.clock.now() + 1) == 1
    assert app.store.steps(old.id) == []
    assert [r[0] for r in rows(app.store_path, "SELECT name FROM events")] == ["prune:other"]


def test_metrics_count_workflow_steps(store_path: str) -> None:
    """A service with [metrics] counts the step records it commits, by kind and state."""
    import socket
    import urllib.request

    from jobrun.config import Settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = jobrun.App(store_path, settings=Settings(metrics={"listen": f"127.0.0.1:{port}"}))

    @app.step
    def one(x: int) -> int:
        return x + 1

    @app.workflow
    def counted() -> int:
        return one(one(1))

    job = counted.enqueue()
    app.start()
    try:
        assert job.result(timeout=20) == 3
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            body = r.read().decode()
    finally:
        app.stop()
        app.close()
    lines = [ln for ln in body.splitlines()
             if ln.startswith('jobrun_workflow_steps_total{kind="step",state="succeeded"}')]
    assert lines and float(lines[0].split()[-1]) >= 2, body


def test_gather_children_never_touch_the_declaring_apps_store(tmp_path: Path) -> None:
    """Found by the power-loss test: a gather resolved its children through the App the
    workflow was declared on, which opened (and created) that App's own store; the children
    belong to the store the workflow runs on."""
    declared = jobrun.App(str(tmp_path / "declared.db"))

    @declared.task
    def kid(i: int) -> int:
        return i * 10

    @declared.workflow
    def parent_flow() -> list[int]:
        return jobrun.gather([kid.call(1), kid.call(2)])

    runs_on = jobrun.App(str(tmp_path / "runs-on.db"))
    job = runs_on.enqueue(parent_flow.name)
    jobrun.testing.run_until_idle(runs_on, timeout=30)
    assert job.result() == [10, 20]
    assert not (tmp_path / "declared.db").exists(), "the declaring App's store was opened"
    runs_on.close()


# -- found by a stranger's test --------------------------------------------------------------
def test_an_event_without_a_payload_is_not_a_timeout(app: jobrun.App) -> None:
    @app.workflow
    def approve(n: int) -> Any:
        return jobrun.wait_event(f"ok:{n}", timeout=60)

    app.send_event("ok:1")
    with jobrun.testing.inline(app):
        assert approve.enqueue(1).result() is True
        assert approve.enqueue(2).result() is None  # nothing sent: the wait timed out


def test_send_event_never_creates_a_store(tmp_path: Path) -> None:
    from conftest import run_cli

    r = run_cli("send-event", "x", "1", "--store", str(tmp_path / "typo.db"))
    assert r.returncode == 1 and "does not exist" in r.stderr, r.stderr
    assert not (tmp_path / "typo.db").exists()


def test_retry_of_a_workflow_runs_its_failed_step_again(app: jobrun.App,
                                                        tmp_path: Path) -> None:
    flag = tmp_path / "upstream-ok"
    ran: list[str] = []

    @app.step
    def once_ok() -> str:
        ran.append("once_ok")
        return "kept"

    @app.step(max_attempts=2)
    def upstream() -> str:
        ran.append("upstream")
        if not flag.exists():
            raise ConnectionError("upstream down")
        return "up"

    @app.workflow
    def flow() -> list[str]:
        return [once_ok(), upstream()]

    with jobrun.testing.inline(app):
        job = flow.enqueue()
        assert job.refresh().state == "dead"
        flag.touch()
        assert app.store.retry(job.id, now=jobrun.clock.now()) == [job.id]
        jobrun.testing.run_inline(app, job.id)
    assert job.result() == ["kept", "up"]
    assert ran.count("once_ok") == 1  # a recorded success is not run again


def test_an_async_workflow_is_refused_at_decoration(app: jobrun.App) -> None:
    with pytest.raises(jobrun.InvalidJob, match="plain def"):
        @app.workflow
        async def nope() -> None: ...


# -- once in a step --------------------------------------------------------------------------
def test_once_blocks_in_a_step_that_goes_on_or_fails(tmp_path: Path) -> None:
    # SQLite for now: op.connection is an apsw connection there (once() on PostgreSQL: #16).
    import apsw

    store_path = str(tmp_path / "jobs.db")
    app = jobrun.App(store_path, settings=FAST)
    # Given: a step with two once blocks writing through op.connection, an enqueue after
    # them (a store write while the last block waits for the step's record), and a first
    # attempt that fails after its blocks.
    rows(store_path, "SELECT 1")
    conn = apsw.Connection(store_path)
    conn.execute("CREATE TABLE IF NOT EXISTS paid (what TEXT NOT NULL)")
    conn.close()
    tries: list[int] = []

    @app.task
    def receipt(n: int) -> int:
        return n

    @app.step(max_attempts=2)
    def pay(n: int) -> str:
        for what in ("charge", "note"):
            with jobrun.once(f"{what}:{n}") as op:
                if not op.done:
                    op.connection.execute("INSERT INTO paid VALUES (?)", (what,))
        receipt.enqueue(n)
        tries.append(n)
        if len(tries) == 1:
            raise RuntimeError("after the blocks")
        return "ok"

    @app.workflow(max_attempts=1)
    def flow(n: int) -> str:
        return pay(n)

    # When: it runs.
    app.start()
    job = flow.enqueue(3)
    # Then: no attempt waited on its own held block; the failed attempt's blocks stood, so
    # the retry skipped them; the step is recorded once.
    assert job.result(timeout=20) == "ok"
    assert rows(store_path, "SELECT what FROM paid ORDER BY rowid") == [("charge",), ("note",)]
    assert [(s.name, s.state, s.attempts) for s in app.store.steps(job.id)] == [
        ("pay", "succeeded", 2)]
    assert rows(store_path, "SELECT count(*) FROM jobs WHERE task LIKE '%receipt'") == [(2,)]
    app.close()
