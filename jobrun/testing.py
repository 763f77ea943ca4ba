"""Helpers for users' own tests.

    with jobrun.testing.inline(app):      # enqueue runs the job at once, here, retries and all
        job = send_email.enqueue(42)
    assert job.state == "succeeded"

    jobrun.testing.run_until_idle(app)    # a real service until nothing is left to run
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from . import clock
from . import inline as inline_mode

if TYPE_CHECKING:
    from .app import App

def run_inline(app: App, job_id: int, *, max_rounds: int = 1000) -> None:
    """Run one job to its end in this thread: retries at once, ignoring backoff and delay."""
    inline_mode.run_inline(app.store, app.inline_holder(), job_id, max_rounds=max_rounds)


@contextlib.contextmanager
def inline(app: App) -> Iterator[App]:
    """Within the block, `enqueue` runs each job at once in the caller's thread."""
    before = app.inline
    app.inline = True
    try:
        yield app
    finally:
        app.inline = before


def pending(app: App, horizon: float) -> int:
    """Jobs that will still run: queued or running, or waiting with run_at before `horizon`."""
    return app.store.pending(horizon)


def run_until_idle(app: App, timeout: float = 30.0, *, settle: float = 0.0) -> dict[str, int]:
    """Run a real service (threads of this process) until no job is left to run.

    Waiting jobs count if they fall due before the deadline. Returns counts by state.
    Raises TimeoutError if work remains after `timeout` seconds."""
    from .service import Service

    service = Service(app.store_path, app.settings)
    service.start()
    deadline = clock.monotonic() + timeout
    try:
        pause = 0.002
        while True:
            if pending(app, clock.now() + max(0.0, deadline - clock.monotonic())) == 0:
                if settle <= 0:
                    break
                settle_end = clock.monotonic() + settle
                while clock.monotonic() < settle_end and pending(app, clock.now()) == 0:
                    service.wait(0.01)
                if pending(app, clock.now()) == 0:
                    break
            if clock.monotonic() >= deadline:
                raise TimeoutError(f"store not idle after {timeout}s: "
                                   f"{pending(app, clock.now())} job(s) left")
            service.wait(pause)
            pause = min(pause * 1.5, 0.05)
    finally:
        service.stop(timeout=5.0)
    return counts(app)


def counts(app: App) -> dict[str, int]:
    return app.store.counts()


__all__ = ["counts", "inline", "pending", "run_inline", "run_until_idle"]
