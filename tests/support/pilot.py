"""Driving the console headless (Textual's pilot) on a real store: run it, read a widget's
text, wait on a condition with a bound."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from textual.widgets import Static

from jobrun.tui.app import Console


def text_of(app: Console, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def drive(app: Console, body: Callable[[Any], Awaitable[None]],
          size: tuple[int, int] = (100, 30)) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await body(pilot)
    asyncio.run(main())


async def until(pilot: Any, cond: Callable[[], object], what: str, tries: int = 200) -> None:
    """Wait (with a bound) until `cond` holds, the console's own refreshes going on."""
    for _ in range(tries):
        await pilot.pause(0.05)
        if cond():
            return
    raise AssertionError(f"timed out waiting for {what}")
