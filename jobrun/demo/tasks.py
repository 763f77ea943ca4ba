"""Demo tasks: a greeting, a flaky call that succeeds on its third attempt, a slow report."""

from __future__ import annotations

import time
from typing import Any

import jobrun

app = jobrun.App()


@app.task
def hello(name: str) -> str:
    return f"hello, {name}"


@app.task(max_attempts=5, retry_base=0.2)
def flaky(succeed_on: int = 3) -> int:
    ctx = jobrun.context()
    if ctx.attempt < succeed_on:
        raise ConnectionError(f"upstream unavailable (attempt {ctx.attempt})")
    return ctx.attempt


@app.task(queue="reports")
def report(report_id: int, seconds: float = 1.0) -> dict[str, object]:
    time.sleep(seconds)
    return {"report": report_id, "rows": 1000 * report_id}


@app.task
def refuse(order_id: int) -> None:
    raise jobrun.Permanent(f"order {order_id} does not exist")


def enqueue_demo_jobs() -> list[jobrun.Job[Any]]:
    """What the demo shows: successes, retries, a permanent failure, a delayed job."""
    jobs = [hello.enqueue("world"), flaky.enqueue(3)]
    jobs += app.enqueue_many([report.call(i, 0.5) for i in range(1, 4)])
    jobs.append(refuse.enqueue(7))
    jobs.append(hello.options(delay=2).enqueue("later"))
    return jobs
