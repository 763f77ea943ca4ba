"""A quiet service's outcomes ride with its next claim (`record_delay`), on a real store.

In a quiet service every job would cost two service commits, a claim and a record, each
writing its pages to the WAL once more. An outcome is held up to `record_delay` for the round
that claims the next job; a drain, a due job or the deadline records it without one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobrun
from jobrun.config import parse
from jobrun.model import Claim
from jobrun.registry import REGISTRY
from jobrun.worker.loop import drained
from support.wait import wait_for

LIMITS = ("rate_limit", "key_concurrency", "key_rate_limit")


@pytest.fixture(autouse=True)
def _no_limited_tasks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One registry per process: a rate-limited task another test registered would turn
    holding off here (a task under limits may be sent to any queue), as it should."""
    kept = {n: s for n, s in REGISTRY._tasks.items()
            if not any(s.extra.get(k) for k in LIMITS)}
    monkeypatch.setattr(REGISTRY, "_tasks", kept)
    yield


def _app(path: Path, delay: str) -> tuple[jobrun.App, threading.Event, jobrun.Task]:  # type: ignore[type-arg]
    settings = parse(f'[jobrun]\npoll = "300s"\nrecord_delay = "{delay}"\n')[0]
    app = jobrun.App(str(path), settings=settings)
    ran = threading.Event()

    @app.task(name="quiet:mark")
    def mark(i: int) -> int:
        ran.set()
        return i

    return app, ran, mark


def _state(app: jobrun.App, job_id: int) -> str:
    return app.job(job_id).record.state.value


def test_a_finished_job_is_recorded_in_the_round_that_claims_the_next(tmp_path: Path) -> None:
    app, ran, mark = _app(tmp_path / "jobs.db", "1s")
    app.start()
    try:
        first = mark.enqueue(1)
        assert ran.wait(10)
        second = mark.enqueue(2)  # its doorbell's round records the first and claims it
        wait_for(lambda: _state(app, first.id) == _state(app, second.id) == "succeeded", 10,
                 "both jobs to succeed")
        one, two = app.job(first.id).record, app.job(second.id).record
        assert one.finished_at is not None and one.finished_at == two.started_at
    finally:
        app.stop(10)
        app.close()


def test_a_held_outcome_is_recorded_by_its_deadline_without_another_job(tmp_path: Path) -> None:
    app, _, mark = _app(tmp_path / "jobs.db", "200ms")  # the poll (300 s) would be too late
    app.start()
    try:
        assert mark.enqueue(7).result(timeout=10) == 7
    finally:
        app.stop(10)
        app.close()


def test_a_drain_records_what_it_holds(tmp_path: Path) -> None:
    app, ran, mark = _app(tmp_path / "jobs.db", "1s")
    app.start()
    job = mark.enqueue(3)
    assert ran.wait(10)
    app.stop(10)
    try:
        rec = app.job(job.id).record
        assert rec.state.value == "succeeded" and rec.attempts == 1
    finally:
        app.close()


def test_record_delay_zero_records_each_outcome_at_once(tmp_path: Path) -> None:
    app, _, mark = _app(tmp_path / "jobs.db", "0s")
    app.start()
    try:
        first = mark.enqueue(1)
        assert first.result(timeout=10) == 1
        second = mark.enqueue(2)
        assert second.result(timeout=10) == 2
        assert app.job(first.id).record.finished_at != app.job(second.id).record.started_at
    finally:
        app.stop(10)
        app.close()


def _claim(queue: str) -> Claim:
    return Claim(id=1, task="t", queue=queue, args=[], kwargs={}, attempt=1, max_attempts=3,
                 token=1, trace_id=None, timeout=None, options={})


def test_drained_means_every_queue_asked_and_short() -> None:
    caps = {"a": 8, "b": 8}
    assert drained([_claim("a")], {"a": 8, "b": 8}, caps)
    assert not drained([_claim("a")] * 8, {"a": 8, "b": 8}, caps)  # a may hold more
    assert not drained([], {"a": 8}, caps)  # b had no free slot: it was not asked
    assert not drained([], {}, {})
