"""Tasks run by real `jobrun start` subprocesses in test_leadership.py and test_reload.py.

`tick` records nothing itself: the `cron_fires` and `jobs` tables are the record.
`gated` leaves a `started-<job>-<attempt>` marker, blocks until `gate-<job>` (or `gate-all`)
exists, then leaves `finished-<job>-<attempt>`; so a test sees how many run at once.
"""

from __future__ import annotations

import os
import time

import jobrun
from support.files import touch as _touch

app = jobrun.App()


@app.task
def tick() -> None:
    """A cron entry's job: does nothing."""




@app.task(queue="gated")
def gated(folder: str, limit: float = 60.0) -> int:
    """Marks its start, waits for its gate file, marks its end; returns its attempt."""
    ctx = jobrun.context()
    tag = f"{ctx.job_id}-{ctx.attempt}"
    _touch(os.path.join(folder, f"started-{tag}"), str(os.getpid()))
    gates = (os.path.join(folder, f"gate-{ctx.job_id}"), os.path.join(folder, "gate-all"))
    deadline = time.monotonic() + limit
    while not any(os.path.exists(g) for g in gates):
        if time.monotonic() > deadline:
            raise RuntimeError(f"gate of job {ctx.job_id} never opened")
        time.sleep(0.01)
    _touch(os.path.join(folder, f"finished-{tag}"))
    return ctx.attempt
