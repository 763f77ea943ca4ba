"""Rich renderables for the CLI: pure functions from records to tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from .. import clock
from ..model import JobRecord
from ..ops.logs import shown

STATE_STYLE = {"succeeded": "green", "dead": "red", "running": "cyan", "retrying": "yellow",
               "cancelled": "dim", "queued": "white", "scheduled": "blue"}


def state_word(r: JobRecord) -> str:
    """The state as `ls` and `show` print it: a held job (claimed ahead of a free worker, not
    started) is "running (held)"; JSON keeps "running" and says `"held": true`."""
    return "running (held)" if r.held else r.state.value


def render(renderable: RenderableType, console: Console | None = None) -> None:
    (console or Console()).print(renderable)


def jobs_table(records: list[JobRecord]) -> Table:
    t = Table(box=None, pad_edge=False)
    for col in ("id", "task", "queue", "state", "att", "pri", "run_at"):
        t.add_column(col, no_wrap=col != "task")
    for r in records:
        t.add_row(str(r.id), r.task, r.queue,
                  Text(state_word(r), style=STATE_STYLE.get(r.state.value, "")),
                  f"{r.attempts}/{r.max_attempts}", str(r.priority), clock.when(r.run_at))
    return t


def job_detail(r: JobRecord) -> Table:
    t = Table(box=None, show_header=False, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    rows: list[tuple[str, Any]] = [
        ("id", r.id), ("task", r.task), ("queue", r.queue),
        ("state", Text(state_word(r), style=STATE_STYLE.get(r.state.value, ""))),
        ("attempts", f"{r.attempts}/{r.max_attempts}"), ("priority", r.priority),
        ("key", r.key), ("args", r.args), ("kwargs", r.kwargs), ("run_at", clock.when(r.run_at)),
        ("enqueued", clock.iso(r.enqueued_at)), ("started", clock.iso(r.started_at)),
        ("finished", clock.iso(r.finished_at)),
        ("holder", f"{r.holder} (held: waiting for a free worker there; attempt not counted "
                   "yet)" if r.held else r.holder), ("trace_id", r.trace_id),
        ("result", r.result),
    ]
    for k, v in rows:
        if v is not None:
            t.add_row(k, v if isinstance(v, Text) else Text(shown(str(v))))
    for e in r.errors:
        attempt = e.get("attempt")
        t.add_row(f"error #{attempt}" if attempt else "error",
                  Text(shown(f"{clock.iso(e.get('at'))} {e.get('type')}: {e.get('message')}")))
        if e.get("traceback"):
            t.add_row("", Text(shown(str(e["traceback"]).rstrip()), style="dim"))
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
            t.add_row(f"{stream} (end)", Text(shown(tail), style="dim"))


# -- tables fitted to the terminal ------------------------------------------------------------
@dataclass
class Col:
    """One column and its cells (a cell may hold several lines), before it is fitted."""

    name: str
    cells: list[str]
    right: bool = False

    def need(self) -> int:
        return max([len(self.name)] + [len(ln) for c in self.cells for ln in c.split("\n")])


Step = tuple[str, str, int]  # ("shrink", column, down to width) or ("drop", column, 0)


def fit(cols: list[Col], width: int, steps: list[Step], gap: int = 1) -> list[tuple[Col, int]]:
    """Columns and their widths within `width`: the steps (shrink a column, drop a column)
    are taken in order until the table fits, so the caller says what goes first."""
    widths = {c.name: c.need() for c in cols}
    live = list(cols)

    def total() -> int:
        return sum(widths[c.name] for c in live) + gap * (len(live) - 1)

    for kind, name, floor in steps:
        if total() <= width:
            break
        if kind == "drop":
            live = [c for c in live if c.name != name]
        elif name in widths:
            widths[name] = max(floor, min(widths[name], widths[name] - (total() - width)))
    return [(c, widths[c.name]) for c in live]


def _cut(text: str, width: int) -> str:
    return "\n".join(ln if len(ln) <= width else ln[:max(0, width - 1)] + "…"
                      for ln in text.split("\n"))


def fitted_table(cols: list[Col], width: int, steps: list[Step],
                 styles: dict[str, str] | None = None) -> Table:
    """A table of one-line cells (never wrapped) at most `width` columns wide."""
    fitted = fit(cols, width, steps)
    t = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    for c, w in fitted:
        t.add_column(c.name if len(c.name) <= w else _cut(c.name, w),
                     justify="right" if c.right else "left", no_wrap=True,
                     overflow="ellipsis", min_width=w, max_width=w,
                     style=(styles or {}).get(c.name))
    for i in range(len(cols[0].cells) if cols else 0):
        t.add_row(*[_cut(c.cells[i], w) for c, w in fitted])
    return t


def _width(width: int | None) -> int:
    return width if width is not None else Console().width


def stats_table(data: dict[str, dict[str, Any]], width: int | None = None) -> Table:
    """Per queue counts; narrower than the whole table, the least needed columns go first
    (scheduled, the hour's counts, retrying, ...), the queue names last of all."""
    from ..tui.views import dur

    rows = sorted(data.items())

    def col(name: str, fmt: Any) -> Col:
        return Col(name, [fmt(v) for _, v in rows], right=True)

    cols = [Col("queue", [n for n, _ in rows]),
            col("queued", lambda v: str(v["queued"])),
            col("running", lambda v: str(v["running"])),
            *([col("held", lambda v: str(v.get("held", 0)))]
              if any(v.get("held") for _, v in rows) else []),
            col("sched", lambda v: str(v["scheduled"])),
            col("retry", lambda v: str(v["retrying"])),
            col("dead", lambda v: str(v["dead"])),
            col("oldest", lambda v: dur(v["oldest_queued_age"]) if v["queued"] else "-"),
            col("ok/1h", lambda v: str(v["succeeded_last_hour"])),
            col("dead/1h", lambda v: str(v["dead_last_hour"])),
            col("fail%", lambda v: f"{v['failure_rate']:.1%}"),
            Col("paused", ["yes" if v["paused"] else "" for _, v in rows])]
    steps: list[Step] = [("drop", c, 0) for c in ("sched", "dead/1h", "ok/1h", "retry",
                                                  "fail%", "oldest", "held")]
    steps += [("shrink", "queue", 12), ("drop", "paused", 0), ("shrink", "queue", 5)]
    return fitted_table(cols, _width(width), steps, {"queue": "bold"})


def cron_table(entries: list[dict[str, Any]], width: int | None = None) -> Table:
    """Cron entries: names are never cut or wrapped; the task and the schedule are cut
    first, then the local times go (the UTC ones stay)."""
    whens = []
    for e in entries:
        when = e["schedule"] or f"every {e['every']:g}s"
        if e["schedule"] and e["timezone"] != "UTC":
            when += f" ({e['timezone']})"
        whens.append(when)
    cols = [Col("name", [e["name"] for e in entries]), Col("when", whens),
            Col("task", [e["task"] or "" for e in entries]),
            Col("next (local)", ["\n".join(e["next_local"]) for e in entries]),
            Col("next (UTC)", ["\n".join(e["next"]) for e in entries])]
    steps: list[Step] = [("shrink", "task", 12), ("shrink", "when", 12),
                         ("drop", "next (local)", 0), ("shrink", "task", 6),
                         ("shrink", "when", 6), ("drop", "when", 0), ("drop", "task", 0)]
    return fitted_table(cols, _width(width), steps, {"name": "bold"})
