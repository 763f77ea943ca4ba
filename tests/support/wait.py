"""Waiting on a condition with a deadline: how every test waits (never a bare sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition", *,
             pause: float = 0.005, pause_cap: float = 0.1) -> Any:
    """cond()'s first truthy value; AssertionError after `timeout` s. The pause between
    polls grows from `pause` by half each time, up to `pause_cap`."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 1.5, pause_cap)
