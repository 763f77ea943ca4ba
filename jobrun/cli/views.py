"""Rich renderables for the CLI: pure functions from records to tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from .. import clock
from ..model import JobRecord

STATE_STYLE = {"succeeded": "green", "dead": "red", "running": "cyan", "retrying": "yellow",
               "cancelled": "dim", "queued": "white", "scheduled": "blue"}


def render(renderable: RenderableType, console: Console | None = None) -> None:
    (console or Console()).print(renderable)


def jobs_table(records: list[JobRecord]) -> Table:
    t = Table(box=None, pad_edge=False)
    for col in ("id", "task", "queue", "state", "att", "pri", "run_at"):
        t.add_column(col, no_wrap=col != "task")
    for r in records:
        t.add_row(str(r.id), r.task, r.queue,
                  Text(r.state.value, style=STATE_STYLE.get(r.state.value, "")),
                  f"{r.attempts}/{r.max_attempts}", str(r.priority), clock.iso(r.run_at) or "")
    return t


def job_detail(r: JobRecord) -> Table:
    t = Table(box=None, show_header=False, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    rows: list[tuple[str, Any]] = [
        ("id", r.id), ("task", r.task), ("queue", r.queue),
        ("state", Text(r.state.value, style=STATE_STYLE.get(r.state.value, ""))),
        ("attempts", f"{r.attempts}/{r.max_attempts}"), ("priority", r.priority),
        ("key", r.key), ("args", r.args), ("kwargs", r.kwargs), ("run_at", clock.iso(r.run_at)),
        ("enqueued", clock.iso(r.enqueued_at)), ("started", clock.iso(r.started_at)),
        ("finished", clock.iso(r.finished_at)), ("holder", r.holder), ("trace_id", r.trace_id),
        ("result", r.result),
    ]
    for k, v in rows:
        if v is not None:
            t.add_row(k, v if isinstance(v, Text) else str(v))
    for e in r.errors:
        t.add_row(f"error #{e.get('attempt') or '-'}",
                  f"{clock.iso(e.get('at'))} {e.get('type')}: {e.get('message')}")
        if e.get("traceback"):
            t.add_row("", Text(e["traceback"].rstrip(), style="dim"))
        _output_rows(t, e)
    if isinstance(r.result, dict) and "exit_code" in r.result:
        _output_rows(t, r.result)
    return t


def _output_rows(t: Table, d: dict[str, Any], lines: int = 20) -> None:
    """A command's exit code and the end of its output (the job keeps the last 64 KiB)."""
    if "exit_code" in d:
        t.add_row("exit code", str(d["exit_code"]))
    for stream in ("stdout", "stderr"):
        text = (d.get(stream) or "").rstrip()
        if text:
            tail = "\n".join(text.splitlines()[-lines:])
            t.add_row(f"{stream} (end)", Text(tail, style="dim"))


def stats_table(data: dict[str, dict[str, Any]]) -> Table:
    t = Table(box=None, pad_edge=False)
    cols = ("queue", "queued", "running", "scheduled", "retrying", "dead", "oldest (s)",
            "ok/1h", "dead/1h", "fail rate", "paused")
    for c in cols:
        t.add_column(c, justify="left" if c == "queue" else "right")
    for name, v in sorted(data.items()):
        t.add_row(name, str(v["queued"]), str(v["running"]), str(v["scheduled"]),
                  str(v["retrying"]), str(v["dead"]), f"{v['oldest_queued_age']:.1f}",
                  str(v["succeeded_last_hour"]), str(v["dead_last_hour"]),
                  f"{v['failure_rate']:.1%}", "yes" if v["paused"] else "")
    return t


def cron_table(entries: list[dict[str, Any]]) -> Table:
    t = Table(box=None, pad_edge=False)
    for c in ("name", "when", "task", "next (local)", "next (UTC)"):
        t.add_column(c, overflow="fold", no_wrap=c.startswith("next"))
    for e in entries:
        when = e["schedule"] or f"every {e['every']:g}s"
        if e["schedule"] and e["timezone"] != "UTC":
            when += f" ({e['timezone']})"
        t.add_row(e["name"], when, e["task"], "\n".join(e["next_local"]), "\n".join(e["next"]))
    return t
