"""Tasks for the operator-surface tests: logs, metrics, alerts, explain."""

from __future__ import annotations

import jobrun

app = jobrun.App()


@app.task
def ok(x: int) -> int:
    return x


@app.task(max_attempts=2, retry_base=0.01)
def fails(x: int) -> int:
    raise ValueError(f"bad {x}")


@app.task
def whose_trace() -> str | None:
    return jobrun.context().trace_id


@app.task(concurrency_key="tenant:{tenant}", key_concurrency=1)
def per_tenant(tenant: str) -> None:
    return None


@app.task(rate_limit="1/h")
def rare() -> None:
    return None
