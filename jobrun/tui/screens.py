"""The console's other screens: a job, a yes/no question, the keys. The app draws the job
(it holds the reads); a screen only asks it to."""

from __future__ import annotations

from typing import ClassVar, TypeVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Static

T = TypeVar("T")
WINDOW = 65_536  # characters of a job drawn at once; ] and [ page through the rest
HELP = """jobrun top: keys (any key closes this)
  q        quit (ctrl+c too)
  ?        this help
  /        filter jobs by task name or argument text (escape clears)
  s / S    next / previous job state (dead, retrying, running, ...)
  tab      jobs or queues (▶ marks the row); a queue narrows the jobs
  enter    open the selected job: arguments, result, errors, output
  escape   back
  a        in a job: payloads in full ([ ] page through a huge one)
  w        why the selected job waits (or what it does): jobrun explain
  r        retry the selected job (y confirms)
  c        cancel the selected job (y confirms)
  d        delete (prune) the selected finished job (y confirms)
  R C D    retry, cancel, delete every job the list matches (y)
  p        pause or resume the selected queue (in the queues)
  + / -    the selected queue's concurrency up / down, live
  =        the queue's concurrency back to its configured value (y)
  n        search on past "searched N of M" (filters read newest first)
  o        overview: per-queue charts (the hour), services, cron
"""


class OneKey(ModalScreen[T]):
    """A box that one key answers and closes. Keys that came with it (`r n n`, a paste) were
    sent here too before it closed, and dismissing twice ended the console: each key after
    the answer goes back to the app, after the ones before it, as if the box had not been."""

    answered = False

    def answer(self, key: str) -> T:
        raise NotImplementedError

    def on_key(self, event: events.Key) -> None:
        event.stop()
        event.prevent_default()
        if self.answered:
            self.app.post_message(events.Key(event.key, event.character))
            return
        self.answered = True
        self.dismiss(self.answer(event.key))


class Confirm(OneKey[bool]):
    """One question; `y` confirms, any other key declines."""

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Static(Text(f"{self.question}  y confirms, any other key cancels"),
                     id="question")

    def answer(self, key: str) -> bool:
        return key == "y"


class Help(OneKey[None]):
    def compose(self) -> ComposeResult:
        yield VerticalScroll(Static(Text(HELP), id="help"))

    def answer(self, key: str) -> None:
        return None


class JobScreen(Screen[None]):
    """One job, redrawn on each refresh (so a retried job is seen to run)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "back"),
                Binding("a", "full", "show all"),
                Binding("right_square_bracket", "page(1)", "next", key_display="]"),
                Binding("left_square_bracket", "page(-1)", "previous", key_display="[",
                        show=False)]

    def __init__(self, job_id: int) -> None:
        super().__init__()
        self.job_id = job_id
        self.full = False
        self.start = 0   # where the shown window of a job too long to draw at once begins
        self.state: str | None = None

    def window(self, text: Text) -> Text:
        """At most WINDOW characters of `text` from `start`, with a line saying where: a
        16 MiB payload shown in full would freeze the console (and take its memory)."""
        if len(text) <= WINDOW:
            return text
        self.start = max(0, min(self.start, len(text) - 1) // WINDOW * WINDOW)
        end = min(len(text), self.start + WINDOW)
        out = text[self.start:end]
        out.append(f"\n… characters {self.start + 1:,}-{end:,} of {len(text):,}: "
                   "] next, [ previous", style="bold")
        return out

    def action_page(self, step: int) -> None:
        self.start = max(0, self.start + step * WINDOW)
        self.action_full()

    def compose(self) -> ComposeResult:
        yield VerticalScroll(Static(id="job"))
        yield Static(id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        draw = getattr(self.app, "draw_job", None)
        if draw is not None:
            draw(self)

    def action_full(self) -> None:
        self.full = True
        draw = getattr(self.app, "draw_job", None)
        if draw is not None:
            draw(self)


class Overview(Screen[None]):
    """Charts, services and cron, redrawn on each refresh."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "back")]

    def compose(self) -> ComposeResult:
        yield VerticalScroll(Static(id="overview"))
        yield Static(id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        draw = getattr(self.app, "draw_overview", None)
        if draw is not None:
            draw(self)
