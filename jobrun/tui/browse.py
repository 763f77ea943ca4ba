"""The console's jobs: pages of one state read through jobs_state, one job drawn as text, and
which actions apply to which state (pure, so the app only wires keys to them).

A page never loads more than it shows: keyset paging (`id < before`), and a text filter
searches at most `SCAN` rows per read, saying how far it got, so a filter that matches
nothing in a million dead jobs costs one bounded read, not a scan of the table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.text import Text

from ..errors import JobrunError
from ..model import JobRecord
from ..ops.explain import gather, reasons
from ..ops.logs import shown
from ..settings import Settings
from ..store.contract import StepRecord, Store
from .views import clock_utc, dur

STATES = ("dead", "retrying", "running", "queued", "scheduled", "succeeded", "cancelled")
# Per state: its read, and the key before the first row (the order each index gives).
_FIRST_DESC, _FIRST_ASC = (1e300, 2 ** 62), (-1e300, -1)
READS: dict[str, tuple[str, tuple[float, int]]] = {  # the store's dashboard block names
    "dead": ("top_jobs_dead", _FIRST_DESC),
    "succeeded": ("top_jobs_finished", _FIRST_DESC),
    "cancelled": ("top_jobs_cancelled", _FIRST_DESC),
    "scheduled": ("top_jobs_waiting", _FIRST_ASC),
    "retrying": ("top_jobs_waiting", _FIRST_ASC),
    "running": ("top_jobs_running", _FIRST_ASC),
    "queued": ("top_jobs_queued", _FIRST_DESC),
}
ORDER = {"dead": "newest finished first", "succeeded": "newest finished first",
         "cancelled": "newest finished first", "scheduled": "next to run first",
         "retrying": "next to run first", "running": "longest running first",
         "queued": "newest first"}
PAGE = 100        # rows per page
SCAN = 1_000      # index entries one span looks at
BUDGET = 5_000    # index entries one read looks at, at most, before it says how far it got
CUT = 2_000       # characters of a payload shown before "a shows all"
RETRYABLE = ("dead", "cancelled", "retrying")
CANCELLABLE = ("queued", "scheduled", "retrying", "running")
DELETABLE = ("succeeded", "cancelled", "dead")
Key = tuple[float, int]


@dataclass(frozen=True)
class JobRow:
    id: int
    task: str
    queue: str
    state: str
    attempts: int
    max_attempts: int
    enqueued_at: float | None
    finished_at: float | None
    args: str         # the stored JSON of args and kwargs, cut, as text
    started_at: float | None = None  # the current (or last) attempt's start

    @property
    def held(self) -> bool:
        """Claimed ahead of a free worker, not started (its attempt not counted yet)."""
        return self.state == "running" and self.started_at is None

    def since(self) -> float | None:
        """When the age shown counts from: a finished job's end, a running job's start (the
        attempt running now, not the enqueue), else its enqueue."""
        if self.finished_at is not None:
            return self.finished_at
        if self.state == "running" and self.started_at is not None:
            return self.started_at
        return self.enqueued_at


@dataclass(frozen=True)
class Page:
    rows: tuple[JobRow, ...]
    after: Key | None     # where the next page starts; None: no more
    scanned: int = 0      # rows looked at
    stopped: bool = False  # it stopped at its budget, not at `limit` rows nor at the end


def page(store: Store, state: str, *, queue: str | None = None, text: str = "",
         after: Key | None = None, limit: int = PAGE, scan: int = SCAN,
         budget: int = BUDGET, args: bool = True) -> Page:
    """Up to `limit` jobs in `state` (and `queue`) matching `text`, in the state's index
    order, from `after` (None: the start). A filter reads span after span, `budget` rows at
    most, and the page then says where it stopped. Without `args` ([ui] show_args = false)
    the filter reads task names only and the rows hold no arguments."""
    sql, first = READS[state]
    key = after or first
    rows: list[JobRow] = []
    scanned = 0
    while True:
        span = scan  # index entries looked at: a bound however rare the rows are
        params = {"state": state, "queue": queue, "text": text.lower() or None,
                  "k": key[0], "id": key[1], "limit": limit - len(rows), "scan": span,
                  "args": int(args)}
        end: Key | None = None
        with store.dashboard() as read:
            found = read(sql, params)
        for r in found:
            if r["edge"]:
                end = (r["k"], int(r["id"]))
                continue
            rows.append(JobRow(int(r["id"]), str(r["task"]), str(r["queue"]), str(r["state"]),
                               int(r["attempts"]), int(r["max_attempts"]), r["enqueued_at"],
                               r["finished_at"],
                               _args(str(r["args"]), str(r["kwargs"])) if args else "(hidden)",
                               r["started_at"]))
            key = (r["k"], int(r["id"]))
        scanned += span if end else 0
        if len(rows) >= limit:
            return Page(tuple(rows), key, scanned)
        if end is None:
            return Page(tuple(rows), None, scanned)  # the span ran out: no more
        key = end
        if scanned >= budget:
            return Page(tuple(rows), key, scanned, stopped=True)


def in_state(queues: Sequence[Any], state: str, queue: str | None) -> int | None:
    """How many jobs are in `state` (and `queue`), from a snapshot's QueueRows; None for
    the finished states, which the snapshot does not count."""
    field = {"scheduled": "scheduled", "retrying": "retrying", "running": "running",
             "queued": "queued", "dead": "dead"}.get(state)
    if field is None:
        return None
    return sum(int(getattr(q, field)) for q in queues if queue is None or q.name == queue)


def search_note(got: Page, total: int | None, key: str = "n") -> str:
    """What a page says when it stopped at its bound (a read looks at `BUDGET` jobs at most,
    however rare the matches: a filter, a queue, cancelled among succeeded): how far it
    searched, of how many, and the key that searches on. Short, so that it fits at 80
    columns; "" when the page did not stop early."""
    if not got.stopped or got.after is None:
        return ""
    of = f" of {total:,}" if total is not None else ""
    found = f"{len(got.rows)} found" if got.rows else "none yet"
    return f"searched {got.scanned:,}{of}: {found}; {key} searches on"


def _args(args: str, kwargs: str) -> str:
    parts = [] if args in ("[]", "") else [args[1:-1] if args.endswith("]") else args]
    if kwargs not in ("{}", ""):
        parts.append(kwargs[1:-1] if kwargs.endswith("}") else kwargs)
    return clip(", ".join(parts), 120)


def clip(text: str, n: int) -> str:
    """One line of at most `n` terminal cells, escaped (a wide CJK character takes two
    cells: cutting by characters made its column twice as wide)."""
    flat = shown(text).replace("\n", "\\n").replace("\t", " ")
    if len(flat) <= n // 2 or cell_len(flat) <= n:
        return flat
    return set_cell_size(flat[:n], n - 1).rstrip(" ") + "…"


def clip_left(text: str, n: int) -> str:
    """One line of at most `n` cells, escaped, cut from the left: a path keeps its end."""
    flat = shown(text).replace("\n", "\\n").replace("\t", " ")
    if cell_len(flat) <= n:
        return flat
    flat = flat[-(n - 1):] if n > 1 else ""
    while flat and cell_len(flat) > n - 1:
        flat = flat[1:]
    return "…" + flat


def why(store: Store, job_id: int | None, settings: Settings | None,
        now: float) -> tuple[str, bool]:
    """`w`: what holds the job back (or what it does) as `jobrun explain` says it, escaped,
    in one paragraph; and whether that is an error."""
    try:
        rec = store.get(job_id) if job_id is not None else None
        if rec is None:
            return "w: no job selected (or it no longer exists)", True
        said = reasons(rec, gather(store, rec, settings or Settings(), now), now)
    except JobrunError as exc:
        said, failed = [f"w failed: {exc}"], True
    else:
        failed = False
    return shown("; ".join(said)).replace("\n", "\\n"), failed


def refusal(action: str, state: str | None, read_only: bool) -> str | None:
    """Why `action` does not apply to a job in `state`, in one line; None when it does."""
    if read_only:
        return f"read-only: {action} refused (jobrun top --read-only)"
    if state is None:
        return f"{action}: no job selected (or it no longer exists)"
    if action == "retry" and state not in RETRYABLE:
        return (f"retry: the job is {state}; only a dead, cancelled or retrying job is retried"
                + ("; w says why it waits" if state in ("queued", "scheduled") else ""))
    if action == "cancel" and state not in CANCELLABLE:
        return f"cancel: the job is {state} (finished); only an unfinished job is cancelled"
    if action == "delete" and state not in DELETABLE:
        return (f"delete: the job is {state}; only a finished job (succeeded, cancelled, "
                "dead) is deleted")
    return None


def _payload(out: Text, title: str, text: str, full: bool) -> None:
    body = shown(text)
    if not full and len(body) > CUT:
        body = body[:CUT] + f"\n… {len(body) - CUT} more characters (a shows all)"
    out.append(f"{title}\n", style="bold")
    out.append(body.rstrip("\n") + "\n\n")


def _json(value: Any) -> str:
    """One line when it fits the screen, else indented."""
    try:
        flat = json.dumps(value, ensure_ascii=False)
        return flat if len(flat) <= 76 else json.dumps(value, indent=1, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def detail(job: JobRecord | None, job_id: int, *, steps: Sequence[StepRecord] = (),
           children: Sequence[int] = (), now: float, full: bool = False,
           show_args: bool = True) -> Text:
    """One job as text: what it is, its payloads escaped and cut, every attempt's error
    (newest first: the one an operator opens it for) with its traceback and command output,
    and a workflow's steps and children."""
    out = Text()
    if job is None:
        out.append(f"job {job_id} no longer exists (deleted or pruned)\n", style="bold red")
        out.append("escape goes back")
        return out
    out.append(f"job {job.id}  {shown(job.task)}  ", style="bold")
    out.append(f"{job.state.value}\n", style="bold red" if job.state.value == "dead" else "bold")
    facts = [f"queue {job.queue}", f"attempt {job.attempts}/{job.max_attempts}",
             f"priority {job.priority}"]
    if job.key:
        facts.append(f"key {shown(job.key)}")
    out.append("  ".join(facts) + "\n")
    times = [(n, t) for n, t in (("enqueued", job.enqueued_at), ("run at", job.run_at),
                                 ("started", job.started_at), ("finished", job.finished_at))
             if t is not None]
    out.append("  ".join(f"{n} {clock_utc(t, True)} ({dur(abs(now - t))}"
                         f"{' ago' if t <= now else ' ahead'})" for n, t in times) + "\n")
    if job.held:
        out.append(f"held by {shown(job.holder or '?')}, waiting for a free worker; attempt not "
                   "counted yet\n", style="bold")
    elif job.holder:
        out.append(f"holder {shown(job.holder)}\n")
    out.append("\n")
    if show_args:
        _payload(out, "arguments", _json({"args": job.args, "kwargs": job.kwargs}), full)
    else:
        out.append("arguments hidden ([ui] show_args = false)\n\n", style="bold")
    if job.result is not None:
        _payload(out, "result", _json(job.result), full)
    if job.errors:
        out.append(f"errors ({len(job.errors)}), newest first\n\n", style="bold")
    for i, err in reversed(list(enumerate(job.errors, 1))):  # the latest failure on top
        at = err.get("at")
        when = clock_utc(at, True) if isinstance(at, (int, float)) else "?"
        head = (f"error {i}/{len(job.errors)} (attempt {err.get('attempt') or '?'}, {when}): "
                f"{err.get('type') or '?'}")
        if "exit_code" in err:
            head += f" exit {err['exit_code']}"
        text = str(err.get("message") or "")
        if err.get("traceback"):
            text += "\n" + str(err["traceback"])
        for stream in ("stdout", "stderr"):
            if err.get(stream):
                text += f"\n--- {stream} ---\n{err[stream]}"
        _payload(out, head, text, full)
    if steps:
        out.append(f"steps ({len(steps)})\n", style="bold")
        for s in steps:
            out.append(f" {s.seq:>3} {s.kind:<7} {clip(s.name, 30):<30} {s.state}"
                       f"{'  ' + clip(str(s.error.get('message', '')), 30) if s.error else ''}\n")
        out.append("\n")
    if children:
        out.append(f"children: {', '.join(map(str, children[:50]))}"
                   f"{' …' if len(children) > 50 else ''}\n")
    return out
