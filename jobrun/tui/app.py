"""`jobrun top` in a terminal: the operator's console (Textual), keys wired to store actions.

Reads go through a read-only connection (`snapshot.take` for queues, `browse.page` for jobs,
`get`/`steps`/`children` for one job); actions open a writable store on first use and call
the same store operations as the CLI (`retry`, `cancel`, `set_paused`). Every action is
refused in one line when it does not apply, and always with `--read-only`. A store that
cannot be read shows its error in the status line; the last frame stays.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Footer, Input, Static

from .. import clock
from ..config import Settings
from ..errors import JobrunError
from ..store.contract import Store
from .bindings import BINDINGS, CSS
from .browse import (
    BUDGET,
    PAGE,
    SCAN,
    STATES,
    JobRow,
    Key,
    Page,
    detail,
    in_state,
    page,
    search_note,
    why,
)
from .charts import overview
from .commands import Commands
from .keys import cursor_at, driver_class, in_order, no_colour, on_sigterm
from .rows import (
    JOB_COLUMNS,
    QUEUE_COLUMNS,
    broke,
    fit_arguments,
    head_line,
    job_cells,
    jobs_title,
    queue_cells,
)
from .screens import Help, JobScreen, Overview
from .snapshot import Snapshot, take
from .source import open_reader
from .window import Window

OVERVIEW_OFF = ("filter", "state", "overview", "search_all", "why")
LIST_ONLY = ("filter", "state", "bulk", "pause", "scale", "reset", "overview", "search_all")
MARK = "▶"  # the selected row's first cell
STEP = 50_000    # index entries `n` looks at per step: the screen stays live between steps
BACKOFF = 10.0   # refresh no more often than every BACKOFF times what the reads cost
SLOWEST = 5.0    # but at least this often


class Console(Commands):
    """The console: queues on top, the jobs of one state below, a job on `enter`."""

    ENABLE_COMMAND_PALETTE = False

    CSS = CSS
    BINDINGS: ClassVar[list[BindingType]] = BINDINGS

    def __init__(self, store_path: str, settings: Settings | None = None, *,
                 read_only: bool = False, refresh: float = 1.0) -> None:
        super().__init__()
        no_colour(self)
        self.marked: dict[str, int] = {}  # per table, the row marked as selected
        self.store_path = store_path
        self.settings = settings
        self.read_only = read_only
        self.show_args = settings.show_args if settings is not None else True
        self.period = refresh
        self.reader = open_reader(store_path)
        self.writer: Store | None = None
        self.window = Window()
        self.snap: Snapshot | None = None
        self.state = STATES[0]
        self.queue: str | None = None
        self.text = ""
        self.rows: list[JobRow] = []
        self.more = False         # another page may follow the loaded rows
        self.after: Key | None = None  # where the next page starts
        self.scanned = 0          # index entries the loaded rows were searched through
        self.short = False        # the last read stopped at its budget, not at the end
        self.reach = BUDGET       # how far a refresh searches from the top (n raises it)
        self.searching = 0        # while n searches on: stop once this many rows are loaded
        self.head = Static(id="head")
        self.queues: DataTable[Any] = DataTable(id="queues", cursor_type="row")
        self.title_line = Static(id="title")
        self.jobs: DataTable[Any] = DataTable(id="jobs", cursor_type="row")
        self.box = Input(placeholder="/ filters: task name or argument text", id="filter")
        self.status = Static(id="status")

    def get_driver_class(self) -> Any:
        return driver_class(self)  # Escape then a key at once: both (keys.py)

    # -- layout ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield self.head
        yield self.queues
        yield self.title_line
        yield self.jobs
        yield self.box
        yield self.status
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.queues.add_columns("", *QUEUE_COLUMNS)
        self.jobs.add_columns("", *JOB_COLUMNS)
        self.jobs.focus()
        self._tick()
        on_sigterm(self, self.exit)

    def _tick(self) -> None:
        """Refresh, then again after `period`, or 10x what the reads cost (at most 5 s): many
        consoles on a huge store cost a fraction of a core, as the dashboard's loop does."""
        started = clock.monotonic()
        self.refresh_data()
        cost = clock.monotonic() - started
        self.set_timer(min(SLOWEST, max(self.period, BACKOFF * cost)), self._tick)

    def on_unmount(self) -> None:
        on_sigterm(self, None)
        self.reader.close()
        if self.writer is not None:
            self.writer.close()

    # -- reading ----------------------------------------------------------------------------
    def refresh_data(self) -> None:
        """One refresh: queues, the loaded jobs (as many as were loaded), the open job."""
        if not self.jobs.is_attached:
            return  # starting or ending: no widgets to draw on
        try:
            now = clock.now()
            self.snap = take(self.reader, now=now, settings=self.settings, window=self.window,
                             failures=False)  # the jobs list shows them
            self._draw_queues()
            loaded = max(PAGE, len(self.rows))
            self._load(reset=True, limit=loaded)
            if isinstance(self.screen, JobScreen):
                self._draw_job(self.screen)
            if isinstance(self.screen, Overview):
                self.draw_overview(self.screen)
            lost = ""
        except JobrunError as exc:
            lost = broke("store unreadable", exc, self.reader.path)
        self._draw_head(lost)

    def _draw_head(self, lost: str) -> None:
        s = self.snap
        self.head.update(Text(lost, style="bold red") if lost else
                         Text(head_line(s, self.read_only, self.size.width)
                              if s is not None else ""))

    def _draw_queues(self) -> None:
        assert self.snap is not None
        t = self.queues
        at = cursor_at(t)  # the row the user is on, even if its highlight is not handled yet
        keep = str(at[1].value or "") or None if at is not None else self.queue
        t.clear()
        t.add_row(" ", "(all)", "", "", "", "", "", "", "", "", "", key="")
        for q in self.snap.queues:
            t.add_row(" ", *queue_cells(q), key=q.name)
        names = [""] + [q.name for q in self.snap.queues]
        t.move_cursor(row=names.index(keep or "") if (keep or "") in names else 0,
                      animate=False)

    def _load(self, *, reset: bool, limit: int = PAGE, budget: int | None = None) -> None:
        """A page from the top (`reset`) or the next one; a refresh searches as far from the
        top as the list was searched (`reach`), so a match found by `n` stays."""
        try:
            got = page(self.reader, self.state, queue=self.queue, text=self.text,
                       after=None if reset else self.after, limit=limit, args=self.show_args,
                       budget=budget or (self.reach if reset else BUDGET))
        except JobrunError as exc:
            if reset and limit != PAGE:
                raise  # a refresh: refresh_data shows it
            self._draw_head(broke("store unreadable", exc, self.reader.path))
            return
        self.rows = list(got.rows) if reset else self.rows + list(got.rows)
        self.after = got.after
        self.scanned = got.scanned if reset else self.scanned + got.scanned
        self.more = got.after is not None
        self.short = got.stopped
        self._draw_jobs()

    def _restart(self) -> None:
        """The list's state, queue or filter changed: its first page, searched from the top
        with the usual bound."""
        self.rows = []
        self.reach = BUDGET
        self.searching = 0
        self._load(reset=True)

    def _note(self) -> str:
        total = in_state(self.snap.queues, self.state, self.queue) if self.snap else None
        note = search_note(Page(tuple(self.rows), self.after, self.scanned, self.short), total)
        return f"{note} (searching)" if note and self.searching else note

    def _draw_jobs(self) -> None:
        t = self.jobs
        selected = self.selected_id()
        row = t.cursor_row
        now = clock.now()
        t.clear()
        cells = fit_arguments(self.rows, [job_cells(r, now) for r in self.rows],
                              self.size.width)
        for r, c in zip(self.rows, cells):
            t.add_row(" ", *c, key=str(r.id))
        ids = [r.id for r in self.rows]
        if selected in ids:
            t.move_cursor(row=ids.index(selected), animate=False)
        elif ids:
            t.move_cursor(row=min(row, len(ids) - 1), animate=False)
        title = jobs_title(self.state, self.queue, self.text, self.rows, more=self.more,
                           note=self._note(), width=self.size.width)
        self.title_line.update(Text(title))

    def draw_overview(self, screen: Overview) -> None:
        if self.snap is not None and screen.query("#overview"):
            screen.query_one("#overview", Static).update(overview(self.snap, self.size.width))

    def draw_job(self, screen: JobScreen) -> None:
        try:
            self._draw_job(screen)
        except JobrunError as exc:
            screen.query_one("#status", Static).update(
                Text(broke("store unreadable", exc, self.reader.path), style="bold red"))

    def _draw_job(self, screen: JobScreen) -> None:
        if not screen.query("#job"):
            return  # pushed, not composed yet: its on_mount draws it
        job = self.reader.get(screen.job_id)
        steps = self.reader.steps(screen.job_id) if job is not None else []
        children = self.reader.children(screen.job_id) if job is not None else []
        screen.state = job.state.value if job is not None else None
        screen.query_one("#job", Static).update(screen.window(
            detail(job, screen.job_id, steps=steps, children=children, now=clock.now(),
                   full=screen.full, show_args=self.show_args)))

    def selected_id(self) -> int | None:
        if isinstance(self.screen, JobScreen):
            return self.screen.job_id
        t = self.jobs
        if not self.rows or t.cursor_row < 0 or t.cursor_row >= len(self.rows):
            return None
        return self.rows[t.cursor_row].id

    def selected_state(self) -> str | None:
        if isinstance(self.screen, JobScreen):
            return self.screen.state
        job_id = self.selected_id()
        return next((r.state for r in self.rows if r.id == job_id), None)

    # -- events -----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """A job's screen leaves out the list's and the queues' keys, the overview those of
        the list (its r, c, d, p say to go back): each footer fits 80 columns."""
        if isinstance(self.screen, Overview):
            return action not in OVERVIEW_OFF
        return not (isinstance(self.screen, JobScreen) and action in LIST_ONLY)

    def on_resize(self, event: events.Resize) -> None:
        """The head and the title are fitted to the width: fitted again."""
        if self.jobs.is_attached:
            self._draw_head("")
            self._draw_jobs()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and await in_order(self, self.box, event, self._apply):
            event.stop()
            event.prevent_default()
            return
        await super().on_event(event)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        t, was = event.data_table, self.marked.get(str(event.data_table.id))
        at = cursor_at(t)  # where the cursor is now, not where the message says it was
        if at is None:
            return
        row, key = at
        if was is not None and was != row and was < t.row_count:
            t.update_cell_at(Coordinate(was, 0), " ")
        t.update_cell_at(Coordinate(row, 0), MARK)  # seen without colour too
        self.marked[str(t.id)] = row
        if t.id == "queues":
            name = str(key.value or "") or None
            if name != self.queue:
                self.queue = name
                self._restart()
        elif t.id == "jobs" and self.more and row >= len(self.rows) - 3:
            self._load(reset=False)  # the next page, only when the cursor nears the end

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "jobs":
            job_id = self.selected_id()
            if job_id is not None:
                self.push_screen(JobScreen(job_id))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._apply(event.value)

    def _apply(self, value: str) -> None:
        """The filter's text applies; the keys go to the jobs again (now, not later: the
        next key may already be waiting)."""
        self.text = value.strip()
        self._restart()
        self._close_box()

    def _close_box(self) -> None:
        self.box.remove_class("open")
        self.screen.set_focus(self.jobs)

    def say(self, text: str, error: bool = False) -> None:
        widget = self.screen.query("#status")
        target = widget.first(Static) if widget else self.status
        target.update(Text(text, style="bold red" if error else "bold"))

    # -- actions ----------------------------------------------------------------------------
    def action_help(self) -> None:
        self.push_screen(Help())

    def action_overview(self) -> None:
        if not isinstance(self.screen, Overview):
            self.push_screen(Overview())

    def action_filter(self) -> None:
        if isinstance(self.screen, JobScreen):
            return
        box = self.box
        box.value = self.text
        box.add_class("open")  # shown only while typed in: never a third tab stop
        self.screen.set_focus(box)
        what = "a task name or argument text" if self.show_args else \
            "a task name (arguments hidden: [ui] show_args = false)"
        self.say(f"filter: type {what}; enter applies, escape clears")

    def action_clear(self) -> None:
        """escape: leave the filter box, and drop the filter."""
        box = self.box
        box.value = ""
        if self.text:
            self.text = ""
            self._restart()
        self._close_box()

    def action_state(self, step: int) -> None:
        if isinstance(self.screen, JobScreen):
            return
        self.state = STATES[(STATES.index(self.state) + step) % len(STATES)]
        self._restart()

    def action_why(self) -> None:
        """w: why the selected job waits (or what it does), as `jobrun explain` says."""
        self.say(*why(self.reader, self.selected_id(), self.settings, clock.now()))

    def action_search_all(self) -> None:
        """n: search on past the bound, `STEP` entries at a time (the screen stays live and
        keys still work between steps), until a page more is found or every job was seen."""
        if self.searching:
            return
        if not self.short:
            self.say("n: the list was not cut short; there is nothing more to search",
                     error=True)
            return
        self.searching = len(self.rows) + PAGE
        self._search_step()

    def _search_step(self) -> None:
        if not self.searching:
            return  # the list was restarted meanwhile
        self._load(reset=False, budget=STEP)
        # a refresh reads as far: the last span, shorter than SCAN, is not counted in scanned
        self.reach = max(self.reach, self.scanned + SCAN)
        if self.short and len(self.rows) < self.searching:
            self._draw_jobs()
            self.set_timer(0.01, self._search_step)
            return
        self.searching = 0
        self._draw_jobs()
        self.say(f"searched {self.scanned:,} jobs: {len(self.rows):,} found"
                 + ("; every job searched" if not self.more else "; n searches on"
                    if self.short else ""))


def run_console(store_path: str, settings: Settings | None, *, read_only: bool) -> None:
    """The console until `q`; a crash (Textual shows its traceback) exits non-zero."""
    app = Console(store_path, settings, read_only=read_only)
    app.run()
    if app.return_code:
        raise SystemExit(app.return_code)
