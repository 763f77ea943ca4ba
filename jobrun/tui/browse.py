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

from rich.text import Text

from ..model import JobRecord
from ..ops.logs import shown
from ..store.contract import StepRecord
from ..store.queries import parse, read_sql
from ..store.sqlite import SqliteStore
from .views import clock_utc, dur

_SQL = parse(read_sql("dashboard.sql"))
TOP_JOBS = _SQL["top_jobs"]
TOP_JOBS_SPAN = _SQL["top_jobs_span"]

STATES = ("dead", "retrying", "running", "queued", "scheduled", "succeeded", "cancelled")
PAGE = 100        # rows per page
SCAN = 20_000     # rows a filtered read looks at, at most
TOP = 2 ** 62     # `before` of the first page
CUT = 2_000       # characters of a payload shown before "a shows all"
RETRYABLE = ("dead", "cancelled", "retrying")
CANCELLABLE = ("queued", "scheduled", "retrying", "running")


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


@dataclass(frozen=True)
class Page:
    rows: tuple[JobRow, ...]
    searched_to: int | None   # a filtered read that stopped early: the lowest id it looked at


def page(store: SqliteStore, state: str, *, queue: str | None = None, text: str = "",
         before: int = TOP, limit: int = PAGE, scan: int = SCAN) -> Page:
    """Up to `limit` jobs in `state` below id `before`, newest first, matching `text`."""
    params = {"state": state, "queue": queue, "text": text.lower() or None,
              "before": before, "limit": limit, "scan": scan if text else limit}
    rows = tuple(
        JobRow(int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), int(r[5]),
               r[6], r[7], _args(str(r[8]), str(r[9])))
        for r in store.read(TOP_JOBS, params))
    searched = None
    if text and len(rows) < limit:
        low, n = store.read(TOP_JOBS_SPAN, params)[0]
        if n == scan and low is not None:
            searched = int(low)
    return Page(rows, searched)


def _args(args: str, kwargs: str) -> str:
    parts = [] if args in ("[]", "") else [args[1:-1] if args.endswith("]") else args]
    if kwargs not in ("{}", ""):
        parts.append(kwargs[1:-1] if kwargs.endswith("}") else kwargs)
    return clip(", ".join(parts), 120)


def clip(text: str, n: int) -> str:
    """One line of at most `n` characters, escaped."""
    flat = shown(text).replace("\n", "\\n").replace("\t", " ")
    return flat if len(flat) <= n else flat[: n - 1] + "…"


def refusal(action: str, state: str | None, read_only: bool) -> str | None:
    """Why `action` does not apply to a job in `state`, in one line; None when it does."""
    if read_only:
        return f"read-only: {action} refused (jobrun top --read-only)"
    if state is None:
        return f"{action}: no job selected (or it no longer exists)"
    if action == "retry" and state not in RETRYABLE:
        return f"retry: the job is {state}; only a dead, cancelled or retrying job is retried"
    if action == "cancel" and state not in CANCELLABLE:
        return f"cancel: the job is {state} (finished); only an unfinished job is cancelled"
    return None


def _payload(out: Text, title: str, text: str, full: bool) -> None:
    body = shown(text)
    if not full and len(body) > CUT:
        body = body[:CUT] + f"\n… {len(body) - CUT} more characters (a shows all)"
    out.append(f"{title}\n", style="bold")
    out.append(body.rstrip("\n") + "\n\n")


def _json(value: Any) -> str:
    try:
        return json.dumps(value, indent=1, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def detail(job: JobRecord | None, job_id: int, *, steps: Sequence[StepRecord] = (),
           children: Sequence[int] = (), now: float, full: bool = False,
           show_args: bool = True) -> Text:
    """One job as text: what it is, its payloads escaped and cut, every error with its
    traceback and command output, and a workflow's steps and children."""
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
    if job.holder:
        out.append(f"holder {shown(job.holder)}\n")
    out.append("\n")
    if show_args:
        _payload(out, "arguments", _json({"args": job.args, "kwargs": job.kwargs}), full)
    else:
        out.append("arguments hidden ([ui] show_args = false)\n\n", style="bold")
    if job.result is not None:
        _payload(out, "result", _json(job.result), full)
    for i, err in enumerate(job.errors, 1):
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
