"""The console's rough edges an outside operator met (issue 15), headless on real stores:
a cancel that lost the race to the job's end, `=` naming the concurrency services run, Esc
then a key at once, every line fitting 80 columns, `R` on a queued job giving the reason
it waits, and wide characters in the jobs table."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from textual.widgets import Static

import jobrun
import jobrun.testing
from jobrun import clock
from jobrun.store.sqlite import SqliteStore
from jobrun.tui.app import Console
from jobrun.tui.screens import Confirm
from store.test_contract import job


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
    for _ in range(tries):
        await pilot.pause(0.05)
        if cond():
            return
    raise AssertionError(f"timed out waiting for {what}")


def test_a_cancel_after_the_job_finished_says_it_was_not_cancelled(
        app: jobrun.App, store_path: str) -> None:
    """The job succeeds while the question is open: y reads the store's answer and says the
    job was not cancelled, as an error; the job stays succeeded."""
    @app.task
    def report(n: int) -> int:
        return n

    queued = report.enqueue(7)

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        await pilot.press("s", "s", "s")
        assert c.state == "queued" and [r.id for r in c.rows] == [queued.id]
        await pilot.press("c")
        assert isinstance(c.screen, Confirm)
        jobrun.testing.run_until_idle(app)  # it runs and succeeds meanwhile
        assert queued.refresh().state == "succeeded"
        await pilot.press("y")
        await until(pilot, lambda: not isinstance(c.screen, Confirm), "the answer")
        said = text_of(c, "#status")
        assert f"job {queued.id} not cancelled: it succeeded meanwhile" in said, said
        assert "cancelled (was" not in said
        assert queued.refresh().state == "succeeded"

    drive(Console(store_path), body)


def test_a_cancel_of_a_waiting_job_still_says_cancelled(tmp_path: Path) -> None:
    path = str(tmp_path / "jobs.db")
    s = SqliteStore(path)
    (one,) = s.enqueue([job()], now=clock.now())
    s.close()

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        await pilot.press("s", "s", "s")
        await pilot.press("c", "y")
        await until(pilot, lambda: "cancelled" in text_of(c, "#status"), "the answer")
        assert f"job {one} cancelled (was queued)" in text_of(c, "#status")

    drive(Console(path), body)
