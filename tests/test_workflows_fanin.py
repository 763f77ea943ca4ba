"""Fan-in: a workflow gathers 10,000 children; it resumes exactly once, with every result in
order. Each child's end checks, in its own recording transaction, whether it was the last of
its parent's to finish (never a shared counter)."""

from __future__ import annotations

import time
from pathlib import Path

import jobrun
from jobrun.config import QueueConfig, Settings

N = 10_000


def test_ten_thousand_children_resume_the_parent_once(tmp_path: Path) -> None:
    app = jobrun.App(tmp_path / "jobs.db", settings=Settings(poll=0.2, queues={
        "default": QueueConfig("default", concurrency=8)}))
    bodies: list[float] = []
    try:
        @app.task
        def child(i: int) -> int:
            return i * 3

        @app.workflow(max_attempts=1)
        def fan(n: int) -> int:
            bodies.append(time.monotonic())
            results = jobrun.gather([child.call(i) for i in range(n)])
            assert results == [i * 3 for i in range(n)]
            return len(results)

        # Given: a service; when: the workflow gathers 10,000 children.
        app.start()
        t0 = time.monotonic()
        job = fan.enqueue(N)
        # Then: it succeeds, its body ran twice (the first run, one resume), in order.
        assert job.result(timeout=60) == N
        took = time.monotonic() - t0
        assert len(bodies) == 2
        assert app.store.counts().get("succeeded") == N + 1
        assert app.store.open_children(job.id) == 0
        print(f"fan-in of {N}: {took:.1f}s")
    finally:
        app.close()
