"""The console's rough edges an outside operator met (issue 15), headless on real stores:
a cancel that lost the race to the job's end, `=` naming the concurrency services run, Esc
then a key at once, every line fitting 80 columns, `R` on a queued job giving the reason
it waits, and wide characters in the jobs table."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console as RichConsole
from textual.widgets import DataTable

import jobrun
import jobrun.testing
from conftest import wait_for
from jobrun import clock
from jobrun.registry import Registry
from jobrun.service import Service
from jobrun.settings import QueueConfig, Settings
from jobrun.store.sqlite import SqliteStore
from jobrun.tui.app import Console
from jobrun.tui.browse import BUDGET
from jobrun.tui.keys import Parser
from jobrun.tui.screens import Confirm, Help, JobScreen, Overview
from store.test_contract import job
from support.pilot import drive, text_of, until
from test_console import in_a_pty, read_until, run_dead


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
    svc = Service(path, Settings(queues={"default": QueueConfig("default", concurrency=3)}),
                  registry=Registry())  # its own: serving only `default`, not every test's

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        await until(pilot, lambda: c.snap is not None and c.snap.services, "the service")
        c.query_one("#queues", DataTable).focus()
        for _ in range(20):  # a refresh between the key and its highlight puts it back
            await pilot.press("down")
            if c.queue == "default":
                break
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


def typed(pilot: Any, data: str) -> None:
    """Bytes as the terminal sends them, read by the console's parser and posted in order
    (one read: Escape and the key came together, as when pressed at once)."""
    for event in Parser().feed(data):
        pilot.app.post_message(event)


def test_escape_then_a_key_at_once_does_both(app: jobrun.App, store_path: str) -> None:
    """ESC s in one read closes the job and moves to the next state (Textual read Alt+s and
    did neither); ESC ? closes it and shows the keys (Textual lost the Escape)."""
    @app.task
    def report(n: int) -> int:
        return n

    report.enqueue(1)

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        await pilot.press("s", "s", "s")
        assert c.state == "queued" and c.rows
        await pilot.press("enter")
        assert isinstance(c.screen, JobScreen)
        typed(pilot, "\x1bs")
        await until(pilot, lambda: c.state == "scheduled", "the next state")
        assert not isinstance(c.screen, JobScreen)
        await pilot.press("S", "enter")
        assert isinstance(c.screen, JobScreen)
        typed(pilot, "\x1b?")
        await until(pilot, lambda: isinstance(c.screen, Help), "the keys")
        assert c.screen_stack[-2] is c.screen_stack[0]  # the job was closed first

    drive(Console(store_path), body)


def test_the_parser_keeps_sequences_and_honours_the_delay() -> None:
    """Arrows, Alt+Backspace and a paste read as before; an Escape whose delay ran out while
    no byte came is a key even when the next byte is read before Textual's 0.1 s tick."""
    def keys(*chunks: str) -> list[str]:
        p, out = Parser(), []
        for chunk in chunks:
            out += [getattr(e, "key", type(e).__name__) for e in p.feed(chunk)]
        return out

    assert keys("\x1bs") == keys("\x1b", "s") == ["escape", "s"]
    assert keys("\x1b[A", "\x1bOB") == ["up", "down"]
    assert keys("\x1b\x7f") == ["ctrl+w"]  # Alt+Backspace: a word deleted in the filter
    pasted = keys("\x1b[200~a\x1bb\x1b[201~")  # an Escape inside a paste is no key
    assert "Paste" in pasted and "escape" not in pasted
    assert keys("\x1b", "\x1b[B") == ["escape", "down"]
    p = Parser()
    assert list(p.feed("\x1b")) == []
    p._timeout_time = 0.0  # its delay ran out before the next byte was read
    assert [getattr(e, "key", "") for e in p.feed("[")] == ["escape", "left_square_bracket"]


@pytest.mark.slow
def test_the_real_console_reads_escape_then_a_key_as_both(
        app: jobrun.App, store_path: str, tmp_path: Path) -> None:
    """`jobrun top` in a pseudo-terminal: enter opens the dead job, ESC s in one write
    closes it and shows the next state's list."""
    run_dead(app, store_path)
    proc, master = in_a_pty(tmp_path, store_path)
    out = bytearray()
    try:
        read_until(master, out, lambda b: b"jobs dead" in b, "a frame")
        os.write(master, b"\r")
        read_until(master, out, lambda b: b"Traceback" in b, "the job")
        os.write(master, b"\x1bs")
        read_until(master, out, lambda b: b"jobs retrying" in b, "the next state's list")
        os.write(master, b"q")
        read_until(master, out, lambda b: b"\x1b[?1049l" in b, "the screen restored")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def screen_lines(app: Console) -> list[str]:
    """What the terminal shows, line by line, as text."""
    out = RichConsole(width=app.size.width, height=app.size.height, file=io.StringIO(),
                      record=True, force_terminal=True)
    out.print(app.screen._compositor.render_update(full=True,
                                                   screen_stack=app._background_screens))
    return out.export_text().splitlines()


def shows(app: Console, *words: str) -> str:
    """The screen, with every word asserted whole on one of its lines (none cut off)."""
    lines = screen_lines(app)
    assert len(lines) <= 24 and all(cell_len(ln) <= 80 for ln in lines)
    text = "\n".join(lines)
    for word in words:
        assert any(word in ln for ln in lines), f"{word!r} not shown whole:\n{text}"
    return text


def test_every_hint_fits_80x24(tmp_path: Path) -> None:
    """At 80x24: the list's title with a search cut short keeps "n searches on"; the keys'
    box shows its last key and its bottom border; the overview's footer keeps its keys;
    a store removed under a long path says so whole."""
    path = tmp_path / ("a-rather-long-directory-name-for-the-store" * 2) / "jobs.db"
    path.parent.mkdir()
    s = SqliteStore(str(path))
    s.enqueue([job("t:needle")], now=clock.now())
    s.enqueue([job("t:hay") for _ in range(BUDGET + 10)], now=clock.now())
    s.close()

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        shows(c, "jobrun top", "q quit", "o charts", "jobs.db")
        await pilot.press("s", "s", "s", "slash", *"needle-in-the-haystack", "enter")
        await until(pilot, lambda: c.short, "the bounded search")
        shows(c, "jobs queued", "needle", f"searched {BUDGET:,} of {BUDGET + 11:,}",
              "none yet; n searches on")
        await pilot.press("question_mark")
        box = shows(c, "jobrun top: keys", "  o ", "  n ", "  =  ", "R C D")
        assert "┗" in box and "┛" in box, box  # the bottom border shows: nothing scrolled off
        await pilot.press("x", "o")
        assert isinstance(c.screen, Overview)
        shows(c, "esc back", "q quit", "r retry", "p pause")
        await pilot.press("escape")
        path.unlink()
        c.refresh_data()
        await pilot.pause()
        shows(c, "store unreadable", "removed while jobrun top watched it",
              "the last frame read", "jobs.db)")

    drive(Console(str(path)), body, size=(80, 24))


def test_wide_characters_are_cut_by_their_cells(app: jobrun.App, store_path: str) -> None:
    """A CJK task name and argument (two cells a character) are cut to the columns' cells,
    not their characters: the row fits 80 columns and the arguments column starts where
    it does for a row of ASCII."""
    wide = app.enqueue("報告:" + "漢字" * 20, args=["東京" * 40], allow_unknown=True)
    app.enqueue("report:" + "ab" * 20, args=["x" * 80], allow_unknown=True)

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        await pilot.press("s", "s", "s")
        assert [r.id for r in c.rows][-1] == wide.id
        task, args = str(c.jobs.get_row_at(1)[2]), str(c.jobs.get_row_at(1)[6])
        assert cell_len(task) <= 28 and task.endswith("…") and task.startswith("報告:漢字")
        assert cell_len(args) <= 60 and args.endswith("…")
        lines = shows(c, "報告:漢字")
        row = next(ln for ln in lines.splitlines() if "報告" in ln)
        ascii_row = next(ln for ln in lines.splitlines() if "report:" in ln)
        assert cell_len(row[:row.index("東京")]) == cell_len(ascii_row[:ascii_row.index("xxx")])

    drive(Console(store_path), body, size=(80, 24))


def test_w_says_why_a_queued_job_waits(tmp_path: Path) -> None:
    """w on a queued job gives `jobrun explain`'s reasons (no service serves its queue), in
    the list and in the job; R on the queued list points to w; a scheduled job waits for
    its time."""
    path = str(tmp_path / "jobs.db")
    s = SqliteStore(path)
    (queued,) = s.enqueue([job("t:\u202ereport")], now=clock.now())
    (later,) = s.enqueue([job(delay=3600)], now=clock.now())
    s.close()

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        await pilot.press("s", "s", "s")
        assert c.state == "queued" and [r.id for r in c.rows] == [queued]
        await pilot.press("w")
        said = text_of(c, "#status")
        assert said.startswith(f"job {queued} is queued; no live service serves queue "
                               "'default' (start one: jobrun start)"), said
        assert "searched" not in said and "found" not in said
        await pilot.press("R")
        assert "w says why it waits" in text_of(c, "#status")
        await pilot.press("enter", "w")
        assert isinstance(c.screen, JobScreen)
        assert f"job {queued} is queued" in text_of(c, "#status")
        await pilot.press("escape", "s")
        assert c.state == "scheduled" and [r.id for r in c.rows] == [later]
        await pilot.press("w")
        assert f"job {later} is waiting for its time" in text_of(c, "#status")

    drive(Console(path), body)
