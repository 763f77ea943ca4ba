"""`jobrun top`'s console driven headless (Textual's pilot) on real stores: every key and
action, a filter that matches nothing, refusals, a job deleted while open, retry then run."""

from __future__ import annotations

import asyncio
import fcntl
import io
import os
import re
import select
import signal
import struct
import subprocess
import termios
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console as RichConsole
from textual.events import Key
from textual.widgets import DataTable, Input, Static

import jobrun
import jobrun.testing
from conftest import JOBRUN
from jobrun import clock
from jobrun.settings import QueueConfig, Settings
from jobrun.store.sqlite import SqliteStore
from jobrun.tui.app import Console
from jobrun.tui.browse import page
from jobrun.tui.screens import WINDOW, Confirm, Help, JobScreen, Overview
from jobrun.tui.views import clean


def text_of(app: Console, selector: str) -> str:
    widget = app.screen.query_one(selector, Static)
    return str(widget.render())


def job_ids(app: Console) -> list[int]:
    return [r.id for r in app.rows]


def drive(app: Console, body: Callable[[Any], Awaitable[None]]) -> None:
    async def main() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            await body(pilot)
    asyncio.run(main())


async def until(pilot: Any, cond: Callable[[], object], what: str, tries: int = 100) -> None:
    """Refresh and wait (with a bound) until `cond` holds."""
    for _ in range(tries):
        pilot.app.refresh_data()
        await pilot.pause(0.05)
        if cond():
            return
    raise AssertionError(f"timed out waiting for {what}")


def run_dead(app: jobrun.App, store_path: str) -> tuple[int, int]:
    @app.task(queue="mail", max_attempts=1)
    def bounce(to: str) -> None:
        raise ValueError(f"no such mailbox {to}\x1b[31m")

    @app.task
    def report(n: int) -> int:
        return n

    dead = bounce.enqueue("ann@example.com")
    jobrun.testing.run_until_idle(app)
    assert dead.refresh().state == "dead"
    queued = report.enqueue(7)
    return dead.id, queued.id


def test_filter_open_retry_cancel_pause_help(app: jobrun.App, store_path: str) -> None:
    dead, queued = run_dead(app, store_path)

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        assert c.state == "dead" and job_ids(c) == [dead]
        assert c.snap is not None and [q.name for q in c.snap.queues] == ["default", "mail"]
        # `?` shows the keys; any key closes.
        await pilot.press("question_mark")
        assert isinstance(c.screen, Help)
        await pilot.press("x")
        assert not isinstance(c.screen, Help)
        # `/` with text that matches nothing, then text of the argument.
        await pilot.press("slash", *"nobody", "enter")
        assert job_ids(c) == [] and "no job matches" in text_of(c, "#title")
        await pilot.press("slash")
        c.query_one("#filter").value = ""  # type: ignore[attr-defined]
        await pilot.press(*"ANN@EXAMPLE", "enter")
        assert job_ids(c) == [dead]
        # enter opens it: the error with its traceback, escaped.
        await pilot.press("enter")
        assert isinstance(c.screen, JobScreen)
        shown = text_of(c, "#job")
        assert "ValueError" in shown and "Traceback" in shown and "\\x1b[31m" in shown
        assert "\x1b" not in shown and "ann@example.com" in shown
        # c on a dead job: refused in one line, nothing asked.
        await pilot.press("c")
        assert not isinstance(c.screen, Confirm)
        assert "cancel: the job is dead" in text_of(c, "#status")
        # r asks; n declines; r y retries.
        await pilot.press("r")
        assert isinstance(c.screen, Confirm)
        await pilot.press("n")
        assert isinstance(c.screen, JobScreen) and "not done" in text_of(c, "#status")
        assert app.store.get(dead).state == "dead"  # type: ignore[union-attr]
        await pilot.press("r", "y")
        assert app.store.get(dead).state == "queued"  # type: ignore[union-attr]
        assert "queued" in text_of(c, "#job")
        # r again: a queued job is not retried.
        await pilot.press("r")
        assert "retry: the job is queued" in text_of(c, "#status")
        # escape back to the list; escape again clears the filter.
        await pilot.press("escape")
        assert not isinstance(c.screen, JobScreen)
        await pilot.press("escape")
        assert c.text == ""
        # s to queued: both jobs, newest first; cancel the report job.
        await pilot.press("s", "s", "s")
        assert c.state == "queued" and job_ids(c) == [queued, dead]
        await pilot.press("c", "y")
        assert app.store.get(queued).state == "cancelled"  # type: ignore[union-attr]
        # p: first a queue is selected, then it is paused and resumed.
        await pilot.press("p")
        assert "select a queue" in text_of(c, "#status")
        # tab has two stops, the jobs and the queues (the filter box only while typed in).
        await pilot.press("tab")
        assert c.focused is c.queues
        await pilot.press("tab")
        assert c.focused is c.jobs
        await pilot.press("tab")
        assert c.focused is c.queues
        await pilot.press("p")  # on the (all) row, in the queues: says so
        assert "(all) is not a queue" in text_of(c, "#status")
        await pilot.press("down")
        queue = c.queue
        assert queue is not None and job_ids(c) in ([dead], [])
        await pilot.press("p")
        assert queue in app.store.paused()
        # p in the overview (which shows no selected queue) is refused, not done unseen.
        await pilot.press("o", "p")
        assert "escape to the queues first" in text_of(c, "#status")
        assert queue in app.store.paused()
        await pilot.press("escape", "p")
        assert queue not in app.store.paused()
        await pilot.press("q")

    drive(Console(store_path), body)


def test_read_only_refuses_every_action(app: jobrun.App, store_path: str) -> None:
    dead, _ = run_dead(app, store_path)

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        for key in ("r", "c", "d", "p", "R", "C", "D", "plus", "minus"):
            await pilot.press(key)
            assert not isinstance(c.screen, Confirm)
            assert "read-only" in text_of(c, "#status")
        await pilot.press("enter", "r")
        assert "read-only" in text_of(c, "#status")
        assert c.writer is None
        assert app.store.get(dead).state == "dead"  # type: ignore[union-attr]

    drive(Console(store_path, read_only=True), body)


def test_delete_one_and_act_on_every_match(app: jobrun.App, store_path: str) -> None:
    @app.task(queue="mail", max_attempts=1)
    def bounce(to: str) -> None:
        raise ValueError(f"no such mailbox {to}")

    dead = [bounce.enqueue(f"{n}@example.com").id for n in ("ann", "bob", "cy", "dee")]
    jobrun.testing.run_until_idle(app)
    newest = app.enqueue("some:task", args=["last"], queue="default").id

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        assert c.state == "dead" and sorted(job_ids(c)) == dead
        # d on the selected dead job: asked, then deleted through the store's prune_job.
        first = job_ids(c)[0]
        await pilot.press("d")
        assert isinstance(c.screen, Confirm)
        await pilot.press("y")
        assert app.store.get(first) is None and first not in job_ids(c)
        assert "deleted" in text_of(c, "#status")
        left = [j for j in dead if j != first]
        # D on a filter: only the matching job goes.
        target = left.pop()
        name = app.store.get(target).args[0]  # type: ignore[union-attr]
        await pilot.press("slash")
        c.query_one("#filter").value = ""  # type: ignore[attr-defined]
        await pilot.press(*name, "enter")
        assert job_ids(c) == [target]
        await pilot.press("D", "y")
        assert app.store.get(target) is None and job_ids(c) == []
        # R with a filter that matches nothing: refused, nothing asked.
        await pilot.press("slash", *"zzz", "enter")
        await pilot.press("R")
        assert not isinstance(c.screen, Confirm) and "no job matches" in text_of(c, "#status")
        await pilot.press("escape")
        # R on every dead job: each queued again; C on the queued list cancels them all.
        await pilot.press("R")
        assert isinstance(c.screen, Confirm) and f"({len(left)} jobs)" in c.screen.question
        await pilot.press("y")
        assert all(app.store.get(j).state == "queued" for j in left)  # type: ignore[union-attr]
        assert f"retried {len(left)} dead jobs" in text_of(c, "#status")
        await pilot.press("s", "s", "s")
        assert c.state == "queued" and sorted(job_ids(c)) == sorted([*left, newest])
        # d on a queued job: refused in one line.
        await pilot.press("d")
        assert "delete: the job is queued" in text_of(c, "#status")
        await pilot.press("D")
        assert "delete: the jobs are queued" in text_of(c, "#status")
        await pilot.press("C", "y")
        for j in [*left, newest]:
            assert app.store.get(j).state == "cancelled"  # type: ignore[union-attr]
        # the newest job is kept by delete (its id must never be given again).
        await pilot.press("s", "s", "s")
        assert c.state == "cancelled" and job_ids(c)[0] == newest
        await pilot.press("d", "y")
        assert app.store.get(newest) is not None and "newest" in text_of(c, "#status")

    drive(Console(store_path), body)


def test_show_args_false_hides_arguments_and_their_search(app: jobrun.App,
                                                          store_path: str) -> None:
    dead, _ = run_dead(app, store_path)

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        assert [r.args for r in c.rows] == ["(hidden)"]
        await pilot.press("slash", *"ann@", "enter")
        assert job_ids(c) == []  # argument text is not searched
        await pilot.press("slash")
        c.query_one("#filter").value = ""  # type: ignore[attr-defined]
        await pilot.press(*"bounce", "enter")
        assert job_ids(c) == [dead]
        await pilot.press("enter")
        shown = text_of(c, "#job")
        assert "arguments hidden" in shown and '"args"' not in shown and "ValueError" in shown

    drive(Console(store_path, Settings(show_args=False)), body)


def test_overview_shows_the_hour_and_goes_back(app: jobrun.App, store_path: str) -> None:
    run_dead(app, store_path)

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        await pilot.press("o")
        assert isinstance(c.screen, Overview)
        out = io.StringIO()
        RichConsole(file=out, width=100).print(
            c.screen.query_one("#overview", Static).content)  # what the widget draws
        shown = out.getvalue()
        assert "charts" in shown and "mail  hour: 0 done, 1 failed" in shown
        assert "services" in shown and "cron" in shown
        await pilot.press("r")
        assert "escape to the jobs first" in text_of(c, "#status")
        await pilot.press("escape")
        assert not isinstance(c.screen, Overview)

    drive(Console(store_path), body)


def test_plus_and_minus_scale_a_queue_of_a_running_service(app: jobrun.App,
                                                           store_path: str) -> None:
    app.settings = Settings(queues={"default": QueueConfig("default", concurrency=2)})
    app.start()

    def caps(c: Console) -> list[tuple[str, int]]:
        return [q for s in (c.snap.services if c.snap else ()) for q in s.queues]

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        await pilot.press("plus")
        assert "select a queue" in text_of(c, "#status")
        await until(pilot, lambda: ("default", 2) in caps(c), "the service's queues")
        c.query_one("#queues", DataTable).focus()
        for _ in range(20):  # other tests' tasks may add queues before it
            await pilot.press("down")
            if c.queue == "default":
                break
        assert c.queue == "default"
        await pilot.press("plus")
        await until(pilot, lambda: app.store.concurrency() == {"default": 3}, "the store")
        assert "concurrency 3, one cap for all its services (was 2)" in text_of(c, "#status")
        # The running service reads it within a poll: its slots and what it publishes.
        await until(pilot, lambda: ("default", 3) in caps(c), "the service to scale up")
        assert c.queue == "default", "a refresh lost the selected queue"
        await pilot.press("minus", "minus")
        await until(pilot, lambda: app.store.concurrency() == {"default": 1}, "the store")
        await pilot.press("minus")
        assert "stays 1" in text_of(c, "#status")
        await until(pilot, lambda: ("default", 1) in caps(c), "the service to scale down")

    try:
        drive(Console(store_path, app.settings), body)
    finally:
        app.stop()


def test_a_job_deleted_while_open(app: jobrun.App, store_path: str) -> None:
    run_dead(app, store_path)

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        await pilot.press("enter")
        assert isinstance(c.screen, JobScreen)
        assert app.store.prune(clock.now() + 10, ("dead",)) == 1
        await until(pilot, lambda: "no longer exists" in text_of(c, "#job"), "the notice")
        await pilot.press("r")
        assert "no job selected" in text_of(c, "#status")
        await pilot.press("escape")
        assert job_ids(c) == []

    drive(Console(store_path), body)


def test_retry_of_a_dead_job_then_it_runs(app: jobrun.App, store_path: str) -> None:
    calls: list[int] = []

    @app.task(max_attempts=1)
    def flaky(n: int) -> int:
        calls.append(n)
        if len(calls) == 1:
            raise RuntimeError("first time fails")
        return n * 2

    job = flaky.enqueue(21)
    jobrun.testing.run_until_idle(app)
    assert job.refresh().state == "dead"

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        await pilot.press("enter", "r", "y")
        jobrun.testing.run_until_idle(app)
        await until(pilot, lambda: "succeeded" in text_of(c, "#job"), "it to succeed")
        shown = text_of(c, "#job")
        assert "result" in shown and "42" in shown and "first time fails" in shown

    drive(Console(store_path), body)


def test_a_lost_store_shows_a_message(app: jobrun.App, store_path: str) -> None:
    run_dead(app, store_path)

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        c.reader.close()
        for suffix in ("", "-wal", "-shm"):
            Path(store_path + suffix).unlink(missing_ok=True)
        await until(pilot, lambda: "store unreadable" in text_of(c, "#head"), "the message")
        assert "does not exist" in text_of(c, "#head") or "store" in text_of(c, "#head")
        await pilot.press("s")  # keys still work on the last frame
        assert c.state == "retrying"

    drive(Console(store_path), body)


def test_paging_keeps_to_pages(app: jobrun.App, store_path: str) -> None:
    """A store with more jobs than a page: pages are read as the cursor moves, not at once;
    a filter searches a bounded span and says where it stopped."""
    for i in range(250):
        app.enqueue("some:task", args=[i], queue="default")
    store = SqliteStore(store_path, readonly=True)
    first = page(store, "queued")
    assert len(first.rows) == 100 and first.rows[0].id > first.rows[-1].id
    second = page(store, "queued", after=first.after)
    assert [r.id for r in second.rows] == list(range(150, 50, -1))
    last = page(store, "queued", after=second.after)
    assert len(last.rows) == 50 and last.after is None
    nothing = page(store, "queued", text="zzz", scan=60, budget=100)
    assert nothing.rows == () and nothing.after is not None and nothing.scanned == 120
    rest = page(store, "queued", text="zzz", after=nothing.after, scan=1000)
    assert rest.rows == () and rest.after is None
    some = page(store, "queued", text="24", limit=5, scan=7)
    assert [r.id for r in some.rows] == [250, 249, 248, 247, 246]  # args 249..245 hold 24
    store.close()

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        await pilot.press("s", "s", "s")
        assert c.state == "queued" and len(c.rows) == 100 and c.more
        # C asks with the true count (the queue's), not the loaded page ("100+").
        await pilot.press("C")
        assert isinstance(c.screen, Confirm) and "(250 jobs)" in c.screen.question
        await pilot.press("n")
        await pilot.press("ctrl+end")
        await pilot.pause()
        assert 100 < len(c.rows) <= 300

    drive(Console(store_path), body)


def test_help_lists_every_contract_key_in_80x24(app: jobrun.App, store_path: str) -> None:
    run_dead(app, store_path)

    async def main() -> None:
        async with Console(store_path).run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await pilot.press("question_mark")
            shown = str(pilot.app.screen.query_one("#help", Static).render())
            for key in ("q ", "? ", "/ ", "enter", "escape", "r ", "c ", "p ", "s ", "d ",
                        "R C D", "o "):
                assert f"\n  {key}" in shown, key
            await pilot.press("escape")
            assert not isinstance(pilot.app.screen, Help)
    asyncio.run(main())


def together(pilot: Any, *keys: str) -> None:
    """Keys as a paste or fast typing over ssh delivers them: all queued before any is
    handled (pilot.press waits after each key, which hides a reordering)."""
    for key in keys:
        char = key if len(key) == 1 else None
        pilot.app.post_message(Key(key, char))


def test_keys_arriving_together_keep_their_order(app: jobrun.App, store_path: str) -> None:
    """tmux send-keys 'ab' BSpace 'cd' types abcd minus b; '/' 'ab' Enter 's' filters by ab
    and then moves to the next state (it was typed into the box, after enter)."""
    run_dead(app, store_path)

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        box = c.query_one("#filter", Input)
        await pilot.press("slash")
        together(pilot, "a", "b", "backspace", "c", "d")
        await pilot.pause()
        assert box.value == "acd"
        together(pilot, "ctrl+u", "x", "y")
        await pilot.pause()
        assert box.value == "xy"
        await pilot.press("escape")
        assert c.text == "" and c.focused is c.jobs
        together(pilot, "slash", "a", "b", "enter", "s")
        await pilot.pause()
        assert c.text == "ab" and c.state == "retrying" and c.focused is c.jobs
        await pilot.press("q")

    drive(Console(store_path), body)


def in_a_pty(tmp_path: Path, store_path: str, stderr: Any = None
             ) -> tuple[subprocess.Popen[bytes], int]:
    """The real `jobrun top` in a pseudo-terminal of 80x24 (stdin, stdout, and stderr unless
    another is given)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color"}
    proc = subprocess.Popen([*JOBRUN, "top", "--store", store_path], stdin=slave, stdout=slave,
                            stderr=slave if stderr is None else stderr, cwd=tmp_path, env=env,
                            start_new_session=True)
    os.close(slave)
    return proc, master


def read_until(master: int, out: bytearray, cond: Callable[[bytes], bool], what: str) -> None:
    deadline = clock.monotonic() + 30
    while not cond(bytes(out)):
        if clock.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {bytes(out)[-300:]!r}")
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                out += os.read(master, 65536)
            except OSError:  # the terminal closed: the process ended
                return


@pytest.mark.slow
def test_sigterm_and_ctrl_c_restore_the_terminal(app: jobrun.App, store_path: str,
                                                 tmp_path: Path) -> None:
    """SIGTERM (and ctrl+c) end the console as `q` does: the screen is given back (the
    alternate screen left), not left raw; SIGTERM's default would kill it mid-frame."""
    run_dead(app, store_path)
    for how in ("sigterm", "ctrl+c"):
        proc, master = in_a_pty(tmp_path, store_path)
        out = bytearray()
        try:
            read_until(master, out, lambda b: b"\x1b[?1049h" in b and b"jobs" in b, "a frame")
            if how == "sigterm":
                proc.send_signal(signal.SIGTERM)
            else:
                os.write(master, b"\x03")
            read_until(master, out, lambda b: b"\x1b[?1049l" in b, "the screen restored")
            assert proc.wait(timeout=30) == 0, how
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)


def test_invisible_and_bidi_characters_are_escaped(app: jobrun.App, store_path: str) -> None:
    """U+202E (right-to-left override) in an argument and U+200B (zero width space) in a
    task name are shown as escapes in the list and the job, never raw."""
    job = app.enqueue("mail:\u200bsend", args=["evil\u202etxt.exe"], allow_unknown=True)

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        await pilot.press("s", "s", "s")
        assert job_ids(c) == [job.id]
        cells = [str(v) for v in c.jobs.get_row_at(0)]
        assert "mail:\\u200bsend" in cells and any("evil\\u202etxt.exe" in v for v in cells)
        await pilot.press("enter")
        shown = text_of(c, "#job")
        assert "\u202e" not in shown and "\u200b" not in shown
        assert "evil\\u202etxt.exe" in shown and "mail:\\u200bsend" in shown

    drive(Console(store_path), body)
    assert clean("q\u202eueue\n") == "q\\u202eueue"  # the dashboard's cells, the same


@pytest.mark.slow
def test_no_color_sends_no_colour_and_marks_the_selected_row(
        app: jobrun.App, store_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_COLOR=1: the real console's output holds no colour codes (Textual's monochrome
    filter sent 256-colour greys), and the selected row is marked by a character."""
    run_dead(app, store_path)
    monkeypatch.setenv("NO_COLOR", "1")
    proc, master = in_a_pty(tmp_path, store_path)
    out = bytearray()
    try:
        read_until(master, out, lambda b: "▶".encode() in b and b"jobs dead" in b, "a frame")
        os.write(master, b"q")
        read_until(master, out, lambda b: b"\x1b[?1049l" in b, "the screen restored")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    colours = re.findall(rb"\x1b\[[0-9;]*(?:38|48);[25];[0-9;]*m", bytes(out))
    assert colours == [], colours[:5]


def test_fits_80x24_and_the_help_fits_60_columns(app: jobrun.App, store_path: str) -> None:
    """At 80x24 every footer key of the list and of a job shows; at 60x20 the keys' box
    keeps its right edge (it wraps and scrolls instead)."""
    run_dead(app, store_path)

    async def main(size: tuple[int, int]) -> None:
        async with Console(store_path).run_test(size=size) as pilot:
            await pilot.pause()
            width = size[0]
            if width >= 80:
                for _ in ("list", "job"):
                    keys = list(pilot.app.screen.query("FooterKey"))
                    assert keys and all(0 < k.region.right <= width for k in keys)
                    await pilot.press("enter")
                assert isinstance(pilot.app.screen, JobScreen)
            await pilot.press("escape", "question_mark")
            assert pilot.app.screen.query_one("#help").region.right <= width
    asyncio.run(main((80, 24)))
    asyncio.run(main((60, 20)))


def test_a_huge_payload_is_shown_a_window_at_a_time(app: jobrun.App, store_path: str) -> None:
    """A 5 MB argument with `a` (show all): a bounded window is drawn, and `]` / `[` page
    through the rest (drawing it all froze the console for 20 s and took 445 MB)."""
    big = "".join(f"{i:07d}," for i in range(625_000))  # 5,000,000 characters
    job = app.enqueue("bulk:load", args=[big], allow_unknown=True)

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        await pilot.press("s", "s", "s")
        assert job_ids(c) == [job.id]
        await pilot.press("enter", "a")
        first = text_of(c, "#job")
        assert len(first) <= WINDOW + 200 and "0000000," in first
        assert re.search(r"characters 1-65,536 of 5,00\d,\d{3}: \] next", first)
        await pilot.press("right_square_bracket")
        second = text_of(c, "#job")
        assert "characters 65,537-131,072 of" in second and "0000000," not in second
        await pilot.press("left_square_bracket")
        again = text_of(c, "#job")
        assert "characters 1-65,536 of" in again and again[-3000:] == first[-3000:]

    drive(Console(store_path), body)


def test_stderr_sent_away_says_why_the_keys_are_missing(app: jobrun.App, store_path: str,
                                                        tmp_path: Path) -> None:
    """`jobrun top 2> file`: Textual draws on stderr, so the read-only dashboard runs on
    stdout, where `?` and `s` did nothing and nothing said why. Its header says it now."""
    run_dead(app, store_path)
    with open(tmp_path / "err.log", "wb") as err:
        proc, master = in_a_pty(tmp_path, store_path, stderr=err)
    out = bytearray()
    try:
        read_until(master, out, lambda b: b"stderr is not a terminal" in b, "the reason shown")
        os.write(master, b"q")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
