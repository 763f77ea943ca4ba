"""Process-queue tasks of the module a service starts with (test_reload_imports.py)."""

from __future__ import annotations

import os
import time

import jobrun
from support.files import touch

app = jobrun.App()




def wait_file(path: str, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@app.task(queue="rproc")
def gated(folder: str, name: str) -> int:
    """Records its pid as `started-NAME`, waits for `gate-NAME`, returns its pid."""
    touch(os.path.join(folder, f"started-{name}"), str(os.getpid()))
    if not wait_file(os.path.join(folder, f"gate-{name}"), 60):
        raise RuntimeError(f"gate-{name} never opened")
    return os.getpid()


@app.task(queue="rproc")
def a_pid() -> int:
    return os.getpid()
