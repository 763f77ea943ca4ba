"""The console's lines and table rows as text (pure): every string from the store escaped
and cut, so the app only places them."""

from __future__ import annotations

from collections.abc import Sequence

from .browse import ORDER, JobRow, clip
from .snapshot import QueueRow, Snapshot
from .views import clean, dur, num, percent, rate

QUEUE_COLUMNS = ("queue", "queued", "run/cap", "sched", "retry", "dead", "oldest", "done/s",
                 "fail%", "")
JOB_COLUMNS = ("id", "task", "queue", "att", "age", "arguments")


def head_line(s: Snapshot, read_only: bool) -> str:
    return (f"jobrun top  running {num(s.running_total)}  dead {num(s.dead_total)}  "
            f"{rate(s.throughput)}/s  services {len(s.services)}"
            f"{'  read-only' if read_only else ''}  {clip(s.store, 200)}")


def queue_cells(q: QueueRow) -> tuple[str, ...]:
    return (clip(q.name, 24), num(q.queued), f"{q.running}/{q.cap if q.cap else '-'}",
            num(q.scheduled), num(q.retrying), num(q.dead),
            dur(q.oldest_age) if q.oldest_age is not None else "-",
            rate(q.throughput), percent(q.failure_rate), "paused" if q.paused else "")


def job_cells(r: JobRow, now: float) -> tuple[str, ...]:
    return (str(r.id), clip(r.task, 28), clip(r.queue, 10), f"{r.attempts}/{r.max_attempts}",
            dur(max(0.0, now - (r.since() or now))), clip(r.args, 60))


def jobs_title(state: str, queue: str | None, text: str, rows: Sequence[JobRow], *,
               more: bool, note: str = "") -> str:
    title = f"jobs {state}, {ORDER[state]}  queue {clip(queue or 'all', 24)}"
    if text:
        title += f"  filter {clip(text, 20)!r}"
    title += f"  {len(rows)} shown{'+' if more else ''}"
    if not rows and not note:  # a search cut short has not found nothing yet
        title += "  (no job matches)" if text else "  (none)"
    if note:
        title += f"  {note}"
    return title


def broke(what: str, exc: Exception) -> str:
    """A store's error as one line of the status."""
    return f"{what}: {clean(str(exc))}"
