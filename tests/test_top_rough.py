"""The console's rough edges an outside operator met (issue 15), headless on real stores:
a cancel that lost the race to the job's end, `=` naming the concurrency services run, Esc
then a key at once, every line fitting 80 columns, `R` on a queued job giving the reason
it waits, and wide characters in the jobs table."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Static

import jobrun
import jobrun.testing
from conftest import wait_for
from jobrun import clock
from jobrun.service import Service
from jobrun.settings import QueueConfig, Settings
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


def test_equals_names_the_concurrency_the_services_go_back_to(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A service started while a live 7 was set serves 7 and its config says 3: `=` says
    back to 3 (not the 7 it serves now), and the service's log line names the 3 it took."""
    path = str(tmp_path / "jobs.db")
    s = SqliteStore(path)
    s.enqueue([job("t:nobody")], now=clock.now())
    s.set_concurrency("default", 7)
    s.close()
    svc = Service(path, Settings(queues={"default": QueueConfig("default", concurrency=3)}))

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        await until(pilot, lambda: c.snap is not None and c.snap.services, "the service")
        c.query_one("#queues", DataTable).focus()
        await pilot.press("down")
        assert c.queue == "default"
        await pilot.press("equals_sign")
        assert isinstance(c.screen, Confirm) and "from 7 to the configured 3?" in \
            c.screen.question, c.screen.question
        await pilot.press("y")
        await until(pilot, lambda: "back to the configured" in text_of(c, "#status"), "reset")
        said = text_of(c, "#status")
        assert "back to the configured 3 (was 7)" in said, said

    with caplog.at_level(logging.INFO, logger="jobrun"):
        svc.start()
        try:
            drive(Console(path), body)
            wait_for(lambda: any("live concurrency applied" in r.getMessage()
                                 for r in caplog.records), 10, "the service to apply it")
        finally:
            svc.stop(2)
    (line,) = [r.getMessage() for r in caplog.records
               if "live concurrency applied" in r.getMessage()]
    assert "default 3 (the config's)" in line, line
