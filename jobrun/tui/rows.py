"""The console's lines and table rows as text (pure): every string from the store escaped
and cut, so the app only places them."""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len

from .browse import ORDER, JobRow, clip, clip_left
from .snapshot import QueueRow, Snapshot
from .views import clean, dur, held_words, num, percent, rate

QUEUE_COLUMNS = ("queue", "queued", "run/cap", "sched", "retry", "dead", "oldest", "done/s",
                 "fail%", "")
JOB_COLUMNS = ("id", "task", "queue", "att", "age", "arguments")
PATH = 40  # cells of a store's path in a message


def head_line(s: Snapshot, read_only: bool, width: int = 200) -> str:
    """The top line; the store's path is cut from the left (its file name kept) to fit."""
    line = (f"jobrun top  running {held_words(s.running_total, s.held_total)}  dead {num(s.dead_total)}  "
            f"{rate(s.throughput)}/s  services {len(s.services)}"
            f"{'  read-only' if read_only else ''}  ")
    return line + clip_left(s.store, max(12, width - cell_len(line)))


def queue_cells(q: QueueRow) -> tuple[str, ...]:
    run = f"{q.started}+{q.held}h" if q.held else str(q.running)  # held: they take the cap
    return (clip(q.name, 24), num(q.queued), f"{run}/{q.cap if q.cap else '-'}",
            num(q.scheduled), num(q.retrying), num(q.dead),
            dur(q.oldest_age) if q.oldest_age is not None else "-",
            rate(q.throughput), percent(q.failure_rate), "paused" if q.paused else "")


def job_cells(r: JobRow, now: float) -> tuple[str, ...]:
    return (str(r.id), clip(r.task, 28), clip(r.queue, 10), f"{r.attempts}/{r.max_attempts}",
            "held" if r.held else dur(max(0.0, now - (r.since() or now))), clip(r.args, 60))


def fit_arguments(rows: list[JobRow], cells: list[tuple[str, ...]], width: int
                  ) -> list[tuple[str, ...]]:
    """The arguments cut (with `…`) to the room the other columns leave in `width`: the
    table cut them at its edge with no mark that more follows."""
    if not cells:
        return cells
    used = 3 + 1  # the mark column with its padding, the focus bar
    for i, name in enumerate(JOB_COLUMNS[:-1]):
        used += max(cell_len(name), *(cell_len(c[i]) for c in cells)) + 2
    room = max(8, width - used - 2)
    return [(*c[:-1], clip(r.args, room)) for r, c in zip(rows, cells)]


def jobs_title(state: str, queue: str | None, text: str, rows: Sequence[JobRow], *,
               more: bool, note: str = "", width: int = 200) -> str:
    """The list's title line, made to fit `width`: the order, `queue all` and the count
    (when the note says what was found) go first, then the filter is cut; the state and
    the note ("...; n searches on") stay whole."""
    found = f"  {len(rows)} shown{'+' if more else ''}"
    if not rows and not note:  # a search cut short has not found nothing yet
        found += "  (no job matches)" if text else "  (none)"
    parts = {"order": f", {ORDER[state]}", "queue": f"  queue {clip(queue or 'all', 24)}",
             "found": found}
    droppable = ["order"] + (["queue"] if queue is None else []) + (["found"] if note else [])

    def line(filter_len: int) -> str:
        shown = f"  filter {clip(text, filter_len)!r}" if text else ""
        return (f"jobs {state}{parts['order']}{parts['queue']}{shown}{parts['found']}"
                + (f"  {note}" if note else ""))

    title = line(20)
    for name in droppable:
        if cell_len(title) <= width:
            break
        parts[name] = ""
        title = line(20)
    over = cell_len(title) - width
    if over > 0 and text:
        title = line(max(6, 20 - over))
    return title


def broke(what: str, exc: Exception, path: str = "") -> str:
    """A store's error as one line of the status; the store's `path` in it cut to its end
    (a long path wrapped the words that say what happened off the screen)."""
    said = clean(str(exc))
    if path and len(path) > PATH:
        said = said.replace(clean(path), clip_left(path, PATH))
    return f"{what}: {said}"
