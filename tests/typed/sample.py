"""Correct uses of the typed API: `mypy --strict` passes, and the test runs them too."""

from __future__ import annotations

from typing import Any, assert_type

import jobrun
from jobrun import Call, Job, Task

app = jobrun.App()  # the store ($JOBRUN_STORE, ...) is opened on first use


@app.task
def add(a: int, b: int) -> int:
    return a + b


@app.task(queue="reports", max_attempts=5, timeout=60, priority=0)
def build_report(report_id: int, *, fmt: str = "pdf") -> str:
    return f"report-{report_id}.{fmt}"


@app.task(name="typed-sample:nothing")
def nothing() -> None:
    return None


def use() -> list[Any]:
    """Every form of enqueue keeps the task's parameters and result type."""
    assert isinstance(add, Task)
    assert_type(add(1, 2), int)  # calling the task runs it here

    job = add.enqueue(1, 2)
    assert_type(job, Job[int])
    keyed = add.options(delay=0, key="k", priority=5).enqueue(a=1, b=2)
    assert_type(keyed, Job[int])
    report = build_report.enqueue(7, fmt="html")
    assert_type(report, Job[str])
    assert_type(nothing.enqueue(), Job[None])

    call = add.call(3, b=4)
    assert_type(call, Call)
    many = app.enqueue_many([call, build_report.options(priority=1).call(8)])
    assert_type(many, list[Job[Any]])

    by_name = app.enqueue(add.name, args=[5, 6])
    assert_type(by_name, Job[Any])
    assert_type(app.job(job.id), Job[Any])
    assert_type(job.refresh(), Job[int])

    total: int = job.result(timeout=10) + 1
    name: str = report.result(timeout=10).upper()
    return [total, name, keyed.result(timeout=10), nothing.enqueue().result(timeout=10),
            [j.result(timeout=10) for j in many], by_name.result(timeout=10)]


@app.task
async def fetch(n: int) -> float:
    return n / 2


@app.task(queue="io")
async def fetch_later(n: int) -> str:
    return str(n)


def use_async() -> None:
    """An `async def` task's job holds the awaited value, as result() returns it."""
    assert_type(fetch.enqueue(1), Job[float])
    assert_type(fetch_later.options(delay=0).enqueue(2), Job[str])
