"""The console's newer keys and views, headless on real stores: `n` searches on past the
list's bound, `=` resets a queue's live concurrency (confirmed; refused in --read-only),
running jobs aged from their start, a job's errors newest first, services' heartbeats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Static

from jobrun import catalog, clock, enqueue
from jobrun.model import Outcome
from jobrun.settings import QueueConfig, Settings
from jobrun.store.sqlite import SqliteStore
from jobrun.tui.actions import act
from jobrun.tui.app import Console
from jobrun.tui.browse import BUDGET, detail, page
from jobrun.tui.screens import Confirm, Help
from jobrun.tui.snapshot import ServiceRow, _caps, take
from jobrun.tui.views import services_table
from store.test_contract import job
from support.pilot import drive, text_of, until


def one_job(tmp_path: Path) -> str:
    """A store holding one queued job; its path."""
    path = str(tmp_path / "jobs.db")
    s = SqliteStore(path)
    s.enqueue([job()], now=clock.now())
    s.close()
    return path


def test_n_searches_past_the_bound_and_the_title_says_how_far(tmp_path: Path) -> None:
    """One old match under more newer jobs than a read looks at: the list says it searched
    BUDGET of them and that n searches on; n finds it; a refresh keeps it."""
    path = str(tmp_path / "jobs.db")
    s = SqliteStore(path)
    (old,) = s.enqueue([job("t:needle")], now=clock.now())
    s.enqueue([job("t:hay") for _ in range(BUDGET + 500)], now=clock.now())
    s.close()

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        await pilot.press("n")  # nothing cut short yet: refused in one line
        assert "nothing more to search" in text_of(c, "#status")
        await pilot.press("s", "s", "s")
        assert c.state == "queued"
        await pilot.press("slash", *"needle", "enter")
        title = text_of(c, "#title")
        assert c.rows == [] and f"searched {BUDGET:,} of {BUDGET + 501:,}" in title, title
        assert "n searches on" in title and "no job matches" not in title
        await pilot.press("n")
        await until(pilot, lambda: [r.id for r in c.rows] == [old], "n to find the match")
        await until(pilot, lambda: "every job searched" in text_of(c, "#status"), "the end")
        c.refresh_data()
        assert [r.id for r in c.rows] == [old], "a refresh lost what n found"
        await pilot.press("slash", *"zzz", "enter")  # a filter that matches nothing
        await pilot.press("n")
        await until(pilot, lambda: not c.searching and not c.short, "the search to end")
        assert c.rows == [] and "no job matches" in text_of(c, "#title")

    drive(Console(path), body)


def test_running_jobs_are_aged_from_their_start(tmp_path: Path) -> None:
    path = str(tmp_path / "jobs.db")
    s = SqliteStore(path)
    now = clock.now()
    s.enqueue([job()], now=now - 7200)
    s.acquire_round([], {"default": 1}, "svc-1", now=now - 5, lease=600)
    s.close()

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        await pilot.press("s", "s")
        assert c.state == "running" and len(c.rows) == 1
        row = c.rows[0]
        assert row.started_at is not None and abs(row.started_at - (now - 5)) < 1
        age = str(c.jobs.get_row_at(0)[5])
        assert age.startswith(("5.", "6.")), age  # since it started, not 2h since enqueue

    drive(Console(path), body)


def test_equals_resets_a_queues_live_concurrency(tmp_path: Path) -> None:
    path = str(tmp_path / "jobs.db")
    s = SqliteStore(path)
    s.enqueue([job()], now=clock.now())
    s.set_concurrency("default", 7)
    s.close()
    settings = Settings(queues={"default": QueueConfig("default", concurrency=3)})

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        await pilot.press("equals_sign")
        assert "select a queue" in text_of(c, "#status")
        c.query_one("#queues", DataTable).focus()
        await pilot.press("down")
        assert c.queue == "default"
        await pilot.press("equals_sign")
        assert isinstance(c.screen, Confirm) and "from 7" in c.screen.question
        await pilot.press("x")  # any other key declines
        await until(pilot, lambda: "not done" in text_of(c, "#status"), "the decline said")
        check = SqliteStore(path, readonly=True)
        try:
            assert check.concurrency() == {"default": 7}
            await pilot.press("equals_sign", "y")
            await until(pilot, lambda: check.concurrency() == {}, "the live change dropped")
            await until(pilot, lambda: "back to the configured 3" in text_of(c, "#status"),
                        "the reset said")
            await pilot.press("equals_sign")  # nothing to reset now: refused
            await until(pilot, lambda: "already runs at its configured" in text_of(c, "#status"),
                        "the second reset refused")
            assert not isinstance(c.screen, Confirm)
        finally:
            check.close()

    drive(Console(path, settings), body)


def test_equals_is_refused_read_only(tmp_path: Path) -> None:
    path = str(tmp_path / "jobs.db")
    s = SqliteStore(path)
    s.enqueue([job()], now=clock.now())
    s.set_concurrency("default", 7)
    s.close()

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        c.query_one("#queues", DataTable).focus()
        await pilot.press("down", "equals_sign")
        assert not isinstance(c.screen, Confirm)
        assert "read-only" in text_of(c, "#status") and c.writer is None

    drive(Console(path, read_only=True), body)
    check = SqliteStore(path, readonly=True)
    assert check.concurrency() == {"default": 7}
    check.close()


def test_a_jobs_errors_are_shown_newest_first_each_with_its_traceback(tmp_path: Path) -> None:
    path = str(tmp_path / "jobs.db")
    s = SqliteStore(path)
    (jid,) = s.enqueue([job()], now=clock.now())
    s.close()
    s = SqliteStore(path)
    rec = s.get(jid)
    assert rec is not None
    s.close()
    errors = [{"at": 1000.0 + i, "attempt": i, "type": "ValueError", "message": f"try {i}",
               "traceback": f"Traceback (most recent call last):\n  frame of try {i}\n"}
              for i in (1, 2, 3)]
    out = detail(rec.__class__(**{**rec.__dict__, "errors": errors}), jid, now=2000.0).plain
    at = [out.index(f"try {i}") for i in (3, 2, 1)]
    assert at == sorted(at), out
    assert "error 3/3" in out and out.index("error 3/3") < out.index("error 1/3")
    assert all(f"frame of try {i}" in out for i in (1, 2, 3))


def test_services_show_their_last_heartbeat() -> None:
    rows = [ServiceRow("a", 11, "h1", 900.0, (("default", 2),), True, beat=997.5),
            ServiceRow("b", 12, "h2", 900.0, (("default", 2),), False)]
    from io import StringIO

    from rich.console import Console as RichConsole
    out = StringIO()
    RichConsole(file=out, width=80).print(services_table(rows, 1000.0, 5))
    shown = out.getvalue()
    assert "beat 2.5s ago" in shown and "beat: idle" in shown, shown


def test_help_lists_the_newer_keys(tmp_path: Path) -> None:
    path = str(tmp_path / "jobs.db")
    SqliteStore(path).close()

    async def body(pilot: Any) -> None:
        await pilot.press("question_mark")
        assert isinstance(pilot.app.screen, Help)
        shown = str(pilot.app.screen.query_one("#help", Static).render())
        for key in ("= ", "n ", "+ / -", "R C D", "d ", "o "):
            assert f"\n  {key}" in shown, key

    drive(Console(path), body)
    assert Text  # rich is the renderer of every line above


def test_a_queues_cap_is_one_for_every_service_never_their_sum() -> None:
    # Three services serving `default` at 8 share one cap of 8 (host-wide, or store-wide on
    # PostgreSQL): the queues view must read 8/8, not 8/24 (a stranger saw 8/24).
    rows = tuple(ServiceRow(h, 10 + i, "h", 900.0, (("default", 8), ("mail", 2)), i == 0)
                 for i, h in enumerate("abc"))
    settings = Settings(queues={"default": QueueConfig("default", concurrency=4)})
    assert _caps(settings, rows, {}) == {"default": 8, "mail": 2}
    assert _caps(settings, (), {}) == {"default": 4}
    assert _caps(settings, rows, {"default": 3}) == {"default": 3, "mail": 2}


def test_highlights_posted_before_a_redraw_are_ignored(tmp_path: Path) -> None:
    """A redraw clears the queues and puts the cursor back; the highlights it posted on the
    way arrive later. Handled, they selected "(all)" for a moment (a `=` then was refused as
    "(all) is not a queue") or named a row gone since (CellDoesNotExist: the console died)."""
    path = one_job(tmp_path)

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        t = c.query_one("#queues", DataTable)
        t.focus()
        await pilot.press("down")
        assert c.queue == "default"
        all_row = t.coordinate_to_cell_key(Coordinate(0, 0)).row_key
        c.post_message(DataTable.RowHighlighted(t, 0, all_row))  # the cursor is on row 1 now
        c.post_message(DataTable.RowHighlighted(t, 7, all_row))  # a row that is not there
        await pilot.pause()
        await pilot.pause()
        assert c.queue == "default" and c.is_running
        await pilot.press("up")  # a real move still selects
        await until(pilot, lambda: c.queue is None, "(all) selected")

    drive(Console(path, Settings()), body)


def test_a_refresh_between_a_move_and_its_highlight_keeps_the_move(tmp_path: Path) -> None:
    """Down moves the cursor at once and posts its highlight; a refresh that redraws the
    queues before the highlight is handled kept the queue selected before and put the cursor
    back there, so the Down was lost. The redraw keeps the row the cursor is on."""
    path = str(tmp_path / "jobs.db")
    s = SqliteStore(path)
    s.enqueue([job(), job(queue="other")], now=clock.now())
    s.close()

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        t = c.query_one("#queues", DataTable)
        t.focus()
        await pilot.pause()
        assert c.queue is None
        t.action_cursor_down()  # the key's effect, its highlight not handled yet
        c.refresh_data()
        await until(pilot, lambda: c.queue is not None, "the moved-to queue selected")
        assert c.queue == "default" and t.cursor_row == 1

    drive(Console(path, Settings()), body)


class _Published:
    """A presence with one live service that published its lease (10 s)."""

    def holders(self) -> list[str]:
        return ["h"]

    def alive(self, holder: str) -> bool:
        return True

    def leader(self) -> str | None:
        return None

    def info(self, holder: str) -> dict[str, Any]:
        return {"pid": 1, "host": "x", "started": 0.0, "queues": {"default": 1}, "lease": 10}


def test_a_heartbeat_is_timed_by_the_lease_its_service_published(tmp_path: Path) -> None:
    """`jobrun top` run with only --store (no config) took the default 60 s lease, so a
    service with lease = "10s" renewing now showed "beat 50s ago"."""
    path = str(tmp_path / "jobs.db")
    s = SqliteStore(path)
    s.enqueue([job()], now=clock.now())
    now = clock.now()
    s.acquire_round([], {"default": 1}, "h", now=now, lease=10)
    s.close()
    reader = SqliteStore(path, readonly=True)
    try:
        snap = take(reader, now=now + 1, presence=_Published())  # type: ignore[arg-type]
    finally:
        reader.close()
    (svc,) = snap.services
    assert svc.beat is not None and abs(svc.beat - now) < 0.01, (svc.beat, now)


def test_keys_that_come_with_a_boxs_answer_are_keys_of_the_screen_below(
        tmp_path: Path) -> None:
    """`r n n` (or `? x x`) arriving together: the first `n` declines, and the second went to
    the closing box too and dismissed it twice (ScreenStackError: the console died, exit 0).
    Now it is a key of the jobs list again."""
    path = one_job(tmp_path)

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        await pilot.pause()
        for keys in (("r", "n", "n"), ("question_mark", "x", "x"), ("r", "y", "s")):
            for k in keys:
                c.post_message(events.Key(k, k if len(k) == 1 else None))
            await until(pilot, lambda: not isinstance(c.screen, (Confirm, Help)),
                        f"the box of {keys} closed")
            assert c.is_running
        await until(pilot, lambda: c.state != "dead", "the `s` after `r y` stepped the state")

    drive(Console(path, Settings()), body)


def test_cancelled_jobs_are_listed_under_many_newer_succeeded_ones(tmp_path: Path) -> None:
    """The cancelled list read a span of every finished job, newest first: under 5,000
    newer succeeded jobs it said "none yet" on a store of cancelled ones. It reads an index
    of the cancelled now, as the dead list does."""
    path = str(tmp_path / "jobs.db")
    s = SqliteStore(path)
    old = s.enqueue([job(), job()], now=clock.now())
    for i in old:
        s.cancel(i, now=clock.now())
    s.enqueue([job() for _ in range(BUDGET + 100)], now=clock.now())
    r = s.acquire_round([], {"default": BUDGET + 100}, "h", now=clock.now(), lease=60)
    s.record([Outcome(c.id, c.token, "succeeded", result="1") for c in r.claims],
             now=clock.now() + 1)
    s.close()
    reader = SqliteStore(path, readonly=True)
    try:
        got = page(reader, "cancelled")
    finally:
        reader.close()
    assert sorted(row.id for row in got.rows) == sorted(old) and not got.stopped


def test_arguments_are_cut_with_a_mark_to_the_room_left(tmp_path: Path) -> None:
    """At 80 columns the table cut the arguments at its edge with no `…`; they are cut to
    the room the other columns leave, marked, and the row fits."""
    path = str(tmp_path / "jobs.db")
    s = SqliteStore(path)
    d = catalog.resolve(None, None, None, Settings(), "default")
    s.enqueue([enqueue.new_job("mail:send", ["bounce-2@example.org", "reminder " * 8], {},
                               {}, clock.now(), d)], now=clock.now())
    s.close()

    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        c.state = "queued"
        c._restart()
        await pilot.pause()
        t = c.query_one("#jobs", DataTable)
        cells = [str(x) for x in t.get_row_at(0)]
        assert cells[-1].endswith("…") and cells[-1].startswith('"bounce-2@example.org"'), cells
        widths = sum(max(len(str(col.label)), len(v)) + 2 for col, v in
                     zip(t.columns.values(), cells))
        assert widths <= 80, (widths, cells)

    drive(Console(path, Settings()), body, size=(80, 24))


def test_r_on_a_cancelled_attempt_still_running_says_where_it_runs(tmp_path: Path) -> None:
    """The console's `r` gives the CLI's reason (ops/explain.not_retried), not "no longer
    retryable"."""
    path = one_job(tmp_path)
    s = SqliteStore(path)
    try:
        (c,) = s.acquire_round([], {"default": 1}, "h9", now=clock.now(), lease=60).claims
        s.cancel(c.id, now=clock.now())
        said, failed = act(s, "retry", c.id, now=clock.now())
    finally:
        s.close()
    assert failed and "still runs on h9" in said, said
