"""The console's actions wired to keys: r, c, d on the selected job, R, C, D on every job
the list matches, p, + and - on the selected queue, = back to its configured concurrency.
Each asks `y` where it changes jobs or undoes a setting, and is refused in one line when it
does not apply (always with `--read-only`). The app holds the reads and the widgets; this
class only declares what it uses of them."""

from __future__ import annotations

from textual.app import App

from .. import clock
from ..config import Settings
from ..errors import JobrunError
from ..store.contract import Store
from .actions import (
    act,
    bulk,
    configured_words,
    done_line,
    how_many,
    queue_refusal,
    reset,
    scale,
    toggle,
)
from .browse import JobRow, clip, refusal
from .rows import broke
from .screens import Confirm, JobScreen, Overview
from .snapshot import Snapshot
from .source import open_writer


class Commands(App[None]):
    """The keys that write: every one goes through `_store`, opened on first use."""

    store_path: str
    settings: Settings | None
    read_only: bool
    show_args: bool
    reader: Store
    writer: Store | None
    snap: Snapshot | None
    state: str
    queue: str | None
    text: str
    rows: list[JobRow]
    more: bool

    def refresh_data(self) -> None:
        raise NotImplementedError

    def say(self, text: str, error: bool = False) -> None:
        raise NotImplementedError

    def selected_id(self) -> int | None:
        raise NotImplementedError

    def selected_state(self) -> str | None:
        raise NotImplementedError

    def _store(self) -> Store:
        if self.writer is None:
            self.writer = open_writer(self.store_path)
        return self.writer

    def action_ask(self, action: str) -> None:
        """r, c, d: the action on the selected job (y confirms)."""
        if isinstance(self.screen, Overview):
            self.say(f"{action}: escape to the jobs first", error=True)
            return
        job_id, state = self.selected_id(), self.selected_state()
        why = refusal(action, state, self.read_only)
        if why or job_id is None:
            self.say(why or f"{action}: no job selected", error=True)
            return

        def done(yes: bool | None) -> None:
            if not yes:
                self.say(f"{action} of job {job_id}: not done")
                return
            self._act(action, job_id)

        self.push_screen(Confirm(f"{action} job {job_id} ({state})?"), done)

    def _act(self, action: str, job_id: int) -> None:
        try:
            said, failed = act(self._store(), action, job_id, now=clock.now())
            self.say(said, error=failed)
        except JobrunError as exc:
            self.say(broke(f"{action} failed", exc), error=True)
        self.refresh_data()

    def action_bulk(self, action: str) -> None:
        """R, C, D: the action on every job the list shows, on every page (y confirms)."""
        if isinstance(self.screen, (JobScreen, Overview)):
            return
        why = refusal(action, self.state, self.read_only)
        if why:
            self.say(why.replace("the job is", "the jobs are"), error=True)
            return
        if not self.rows:
            self.say(f"{action}: no job matches", error=True)
            return
        what = (f"every {self.state} job of queue {self.queue or 'all'}"
                + (f" matching {clip(self.text, 20)!r}" if self.text else "")
                + f" ({self._how_many()})")
        state, queue, text = self.state, self.queue, self.text

        def done(yes: bool | None) -> None:
            if not yes:
                self.say(f"{action} of {what}: not done")
                return
            try:
                n, missed = bulk(self.reader, self._store(), action, state, queue=queue,
                                 text=text, now=clock.now(), args=self.show_args)
                self.say(done_line(action, n, missed, state), error=bool(missed))
            except JobrunError as exc:
                self.say(broke(f"{action} failed", exc), error=True)
            self.rows = []
            self.refresh_data()

        self.push_screen(Confirm(f"{action} {what}?"), done)

    def _how_many(self) -> str:
        return how_many(self.snap, self.state, self.queue, text=self.text,
                        loaded=len(self.rows), more=self.more)

    def _queue_key(self, action: str) -> None:
        """p, + and -: only on the queue the jobs screen shows selected, never on one left
        selected out of sight (the overview, a job)."""
        why = queue_refusal(action, self.queue, read_only=self.read_only,
                            shown=self.screen is self.screen_stack[0],
                            in_queues=self.focused is self.query_one("#queues"))
        if why or self.queue is None:
            self.say(why or action, error=True)
            return
        try:
            said, failed = (toggle(self._store(), self.queue, self.snap) if action == "pause"
                            else scale(self._store(), self.queue, 1 if action == "+" else -1,
                                       self.snap, self.settings))
        except JobrunError as exc:
            said, failed = broke(f"{action} failed", exc), True
        self.say(said, error=failed)
        self.refresh_data()

    def action_pause(self) -> None:
        self._queue_key("pause")

    def action_scale(self, step: int) -> None:
        """+ and -: the selected queue's concurrency, live, through the store."""
        self._queue_key("+" if step > 0 else "-")


    def action_reset(self) -> None:
        """=: the selected queue's live concurrency (set by + and -) back to the config's,
        for every service (y confirms)."""
        why = queue_refusal("reset", self.queue, read_only=self.read_only,
                            shown=self.screen is self.screen_stack[0],
                            in_queues=self.focused is self.query_one("#queues"))
        if why or self.queue is None:
            self.say(why or "reset", error=True)
            return
        queue = self.queue
        try:
            live = self._store().concurrency().get(queue)
        except JobrunError as exc:
            self.say(broke("reset failed", exc), error=True)
            return
        if live is None:
            self.say(f"reset: queue {queue} already runs at its configured concurrency "
                     "(+ or - changes it live)", error=True)
            return

        def done(yes: bool | None) -> None:
            if not yes:
                self.say(f"reset of queue {queue}: not done")
                return
            try:
                said, failed = reset(self._store(), queue, self.snap, self.settings)
            except JobrunError as exc:
                said, failed = broke("reset failed", exc), True
            self.say(said, error=failed)
            self.refresh_data()

        self.push_screen(Confirm(f"reset queue {queue}'s concurrency from {live} to the "
                                 f"configured {configured_words(queue, self.snap, self.settings)}?"),
                         done)
