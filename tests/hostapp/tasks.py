"""Tasks run by the `jobrun start` services of test_multihost.py (one PostgreSQL store).

`work` leaves `started-<job>-<attempt>-<pid>` and, once it has worked, `done-<job>-<attempt>-
<pid>`, and returns its pid: the stored result names the process whose outcome was kept.
`tick` is the cron entry's job: the `cron_fires` and `jobs` tables are its record.
"""

from __future__ import annotations

import os
import time

import jobrun
from support.files import touch as _touch

app = jobrun.App()


@app.task
def work(folder: str, seconds: float) -> int:
    ctx = jobrun.context()
    tag = f"{ctx.job_id}-{ctx.attempt}-{os.getpid()}"
    _touch(os.path.join(folder, f"started-{tag}"))
    time.sleep(seconds)
    _touch(os.path.join(folder, f"done-{tag}"))
    return os.getpid()


@app.task
def tick() -> None:
    """Does nothing."""
