"""Marker files that tasks write and tests wait for."""

from __future__ import annotations

import os
import time


def touch(path: str, text: str = "") -> None:
    """Write a marker atomically: a reader never sees it half-written."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def wait_file(path: str, limit: float) -> bool:
    """Whether `path` appeared within `limit` seconds."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
