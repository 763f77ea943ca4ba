"""A module added to `import` by a reload, with a process-queue task (test_reload_imports.py)."""

from __future__ import annotations

import os

import jobrun

app = jobrun.App()


@app.task(queue="rproc")
def b_pid() -> int:
    return os.getpid()
