"""Process-queue tasks of the module a service starts with (test_reload_imports.py)."""

from __future__ import annotations

import os

import jobrun
from support.files import touch, wait_file

app = jobrun.App()


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
