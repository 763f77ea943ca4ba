"""The dashboard drawn from a Snapshot: pure functions to rich renderables, no I/O, no clock.

Every row is one line (no wrapping, ellipsis instead), so the height of each section is
known before drawing and the frame can be fitted to the terminal: rows are shared out
between the sections, and a list too long for its share ends in a "+N more" line.
Strings from the store are drawn as Text, never parsed as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..ops.logs import escape
from .snapshot import (
    CronRow,
    Failure,
    QueueRow,
    RunningJob,
    ServiceRow,
    Snapshot,
)
from .window import BUCKET

BLOCKS = "▁▂▃▄▅▆▇█"
WIDE = 110  # from this width the queue table also shows the hour's counts


# -- formatting -------------------------------------------------------------------------------
def num(n: int) -> str:
    """At most five characters: 999, 12.3k, 456k, 7.8M."""
    if n < 1000:
        return str(n)
    if n < 10_000:
        return f"{n / 1000:.1f}k"
    if n < 1_000_000:
        return f"{n // 1000}k"
    return f"{n / 1_000_000:.1f}M"


def dur(s: float) -> str:
    """A duration in at most two units: 4.2s, 12s, 3m05s, 2h10m, 3d4h."""
    if s < 10:
        return f"{s:.1f}s"
    n = int(s)
    if n < 60:
        return f"{n}s"
    if n < 3600:
        return f"{n // 60}m{n % 60:02d}s"
    if n < 86400:
        return f"{n // 3600}h{n % 3600 // 60:02d}m"
    return f"{n // 86400}d{n % 86400 // 3600}h"


def rate(r: float) -> str:
    if r <= 0:
        return "0"
    return f"{r:.2f}" if r < 10 else f"{r:.1f}" if r < 100 else num(round(r))


def percent(fr: float | None) -> str:
    """A failure rate: "-" when nothing finished, one decimal below 10%."""
    if fr is None:
        return "-"
    if 0 < fr < 0.001:
        return "<0.1%"
    return f"{fr:.1%}" if fr < 0.1 else f"{fr:.0%}"


def clean(s: str) -> str:
    """One line of text: newlines and runs of blanks become single spaces; control,
    invisible and bidi characters are escaped (text from the store must not hide or reverse
    what is drawn)."""
    return escape(" ".join(s.split()))


def clock_utc(ts: float, date: bool = False) -> str:
    fmt = "%Y-%m-%d %H:%MZ" if date else "%H:%M:%SZ"
    return datetime.fromtimestamp(ts, UTC).strftime(fmt)


def sparkline(values: Sequence[int], width: int, style: str = "green") -> Text:
    """The last `width` values as block characters scaled to their maximum; zero is dim."""
    vals = list(values)[-width:] if width > 0 else []
    top = max(vals, default=0)
    out = Text(no_wrap=True)
    for v in vals:
        if v <= 0:
            out.append(BLOCKS[0], style="dim")
        else:
            out.append(BLOCKS[max(1, round(v / top * (len(BLOCKS) - 1)))], style=style)
    return out


def line(*parts: str | tuple[str, str] | Text) -> Text:
    """One line, cut with an ellipsis if the terminal is narrower."""
    t = Text(no_wrap=True, overflow="ellipsis")
    for p in parts:
        if isinstance(p, tuple):
            t.append(p[0], style=p[1])
        else:
            t.append(p)
    return t


def _table(*cols: str, header: bool = True, wide: dict[str, int] | None = None,
           cap: dict[str, int] | None = None) -> Table:
    """One line per row, never wrapped: the `wide` columns share the spare width by their
    weights and are cut (with an ellipsis) first; `cap` limits a column's width. A leading
    `>` aligns a column right."""
    wide, cap = wide or {}, cap or {}
    t = Table(box=None, show_header=header, show_edge=False, pad_edge=False, padding=(0, 1),
              expand=True, header_style="bold dim")
    for c in cols:
        name = c.lstrip(">")
        t.add_column(name, justify="right" if c.startswith(">") else "left", no_wrap=True,
                     overflow="ellipsis", ratio=wide.get(name),
                     min_width=6 if name in wide else None, max_width=cap.get(name))
    return t


def _with_more(t: Table, left: int, what: str, limit: int) -> RenderableType:
    """A list cut short ends in a line saying so (none when the list got no rows at all);
    outside the table, so that the line does not widen a column."""
    if left > 0 and limit > 0:
        return Group(t, line((f"… +{left} more {what}", "dim")))
    return t


# -- sections ---------------------------------------------------------------------------------
def header(snap: Snapshot, notice: str = "", live: bool = True) -> Text:
    parts: list[str | tuple[str, str] | Text] = [
        ("jobrun top", "bold"), "  ", (clock_utc(snap.now), "cyan")]
    if live:
        parts += ["  ", ("q", "bold"), (" quits", "dim")]
    if notice:
        parts += ["  ", (clean(notice), "bold red")]
    parts += ["  ", (clean(snap.store), "dim")]
    return line(*parts)


def activity(snap: Snapshot, width: int) -> Text:
    label = f"finished/{BUCKET:g}s "
    tail = f"  {rate(snap.throughput)}/s last min"
    room = max(0, min(len(snap.spark), width - len(label) - len(tail)))
    return line((label, "bold"), sparkline(snap.spark, room), (tail, "bold green"))


# Narrower than the whole queue table, these columns go first (in this order), so that the
# queue names keep their room down to ~50 columns; queued, running and dead always stay.
NARROW_DROP = ("sched", "done/s", "retry", "fail/1h", "oldest", "paused")
NAME_ROOM = 24  # a queue name is given up to this many columns before columns are dropped


def queue_columns(rows: Sequence[QueueRow], width: int) -> list[str]:
    """The queue table's columns (`>`: right-aligned) that fit `width` beside the names."""
    cols = ["queue", ">queued", ">sched", ">running", ">retry", ">dead", ">oldest", ">done/s",
            ">fail/1h"] + ([">ok/1h", ">dead/1h"] if width >= WIDE else []) + ["paused"]
    name = max(5, min(NAME_ROOM, max((cell_len(q.name) for q in rows), default=5)))

    def need(cs: list[str]) -> int:
        return name + sum(len(c.lstrip(">")) for c in cs[1:]) + 2 * (len(cs) - 1)

    for drop in NARROW_DROP:
        if need(cols) <= width:
            break
        cols = [c for c in cols if c.lstrip(">") != drop]
    return cols


def run_cap(q: QueueRow) -> str:
    """A queue's running jobs and its cap: "8/32", or "8+24h/32" while 24 more are held
    (claimed ahead of a free worker, not started): they take the cap too."""
    run = f"{num(q.started)}+{num(q.held)}h" if q.held else num(q.running)
    return f"{run}/{num(q.cap)}" if q.cap is not None else run


def held_words(running: int, held: int) -> str:
    """"8 (+24 held)": the jobs a worker runs, and those claimed ahead of one."""
    return f"{num(running - held)} (+{num(held)} held)" if held else num(running)


def queues_table(rows: Sequence[QueueRow], limit: int, width: int) -> RenderableType:
    cols = queue_columns(rows, width)
    t = _table(*cols, wide={"queue": 1})
    shown = rows if len(rows) <= limit else rows[:max(0, limit - 1)]
    for q in shown:
        run = run_cap(q)
        fr = q.failure_rate
        cells = {
            "queue": Text(clean(q.name), style="bold yellow" if q.paused and "paused" not in cols
                          else "bold"),
            ">queued": Text(num(q.queued)), ">sched": Text(num(q.scheduled)),
            ">running": Text(run, style="cyan" if q.running else ""),
            ">retry": Text(num(q.retrying), style="yellow" if q.retrying else ""),
            ">dead": Text(num(q.dead), style="red" if q.dead else ""),
            ">oldest": Text(dur(q.oldest_age) if q.oldest_age is not None else "-"),
            ">done/s": Text(rate(q.throughput)),
            ">fail/1h": Text(percent(fr), style="red" if fr else ""),
            ">ok/1h": Text(num(q.succeeded_hour)), ">dead/1h": Text(num(q.dead_hour)),
            "paused": Text("paused", style="bold yellow") if q.paused else Text("")}
        t.add_row(*[cells[c] for c in cols])
    return _with_more(t, len(rows) - len(shown), "queues", limit)


def running_title(snap: Snapshot) -> Text:
    parts: list[str | tuple[str, str] | Text] = (
        [("running", "bold"), ("  none", "dim")] if not snap.running_total
        else [("running ", "bold"), (held_words(snap.running_total, snap.held_total), "cyan")])
    total = sum(n for _, n in snap.waiting)
    if total:  # durable workflows waiting in the store: no slot held
        kinds = ", ".join(f"{k} {num(n)}" for k, n in snap.waiting)
        parts += [("   workflows waiting ", "bold"), (num(total), "magenta"), (f" ({kinds})", "dim")]
    return line(*parts)


def running_table(jobs: Sequence[RunningJob], total: int, limit: int) -> RenderableType:
    t = _table(">id", "task", "queue", ">attempt", ">elapsed", "holder", wide={"task": 1})
    total = max(total, len(jobs))
    shown = jobs if total <= limit else jobs[:max(0, limit - 1)]
    for j in shown:
        t.add_row(Text(str(j.id)), Text(clean(j.task)), Text(clean(j.queue)),
                  Text(f"{j.attempt}/{j.max_attempts}"),
                  Text("held", style="dim") if j.held else Text(dur(j.elapsed)),
                  Text(clean(j.holder)) if j.holder_alive  # else: its service died, rescue comes
                  else Text(f"{clean(j.holder)} DEAD", style="bold red"))
    return _with_more(t, total - len(shown), "running", limit)


def failures_title(snap: Snapshot, width: int) -> Text:
    parts: list[str | tuple[str, str] | Text] = [
        ("recent failures", "bold"), "   dead ", (num(snap.dead_total), "red" if
                                                 snap.dead_total else ""),
        (f", +{num(snap.dead_hour)} in the last hour ", "dim")]
    if snap.dead_hour:
        parts.append(sparkline(snap.dead_trend, min(12, width)))
    if not snap.failures:
        parts.append(("   none", "dim"))
    return line(*parts)


def failures_table(fails: Sequence[Failure], now: float, limit: int) -> RenderableType:
    t = _table(">id", "state", ">attempt", ">ago", "task", "error", header=False,
               wide={"error": 1},
               cap={"task": 28})
    shown = fails if len(fails) <= limit else fails[:max(0, limit - 1)]
    for f in shown:
        ago = dur(max(0.0, now - f.at)) if f.at is not None else "?"
        t.add_row(Text(str(f.id)), Text(f.state, style="red" if f.state == "dead" else "yellow"),
                  Text(f"{f.attempt}/{f.max_attempts}"), Text(ago), Text(clean(f.task)),
                  Text(clean(f"{f.error_type}: {f.message}")))
    return _with_more(t, len(fails) - len(shown), "failures", limit)


def services_title(snap: Snapshot) -> Text:
    if not snap.services:
        return line(("services", "bold"), ("  none alive: nothing runs", "bold red"))
    lead = [s for s in snap.services if s.leader]
    who = (f"leader pid {lead[0].pid}" if lead else f"leader {snap.leader}" if snap.leader
           else "no leader: cron waits")
    return line(("services ", "bold"), str(len(snap.services)), (f"   {who}", "dim"))


def beat(at: float | None, now: float) -> Text:
    """A service's last heartbeat (a claim or a lease renewal, every lease/3 while it runs
    jobs), as an age; idle, it beats by holding its lock, which the frame just checked."""
    if at is None:
        return Text("beat: idle", style="dim")
    return Text(f"beat {dur(max(0.0, now - at))} ago")


def services_table(rows: Sequence[ServiceRow], now: float, limit: int) -> RenderableType:
    t = _table("mark", ">pid", "host", "up", "beat", "queues", header=False,
               wide={"queues": 1})
    shown = rows if len(rows) <= limit else rows[:max(0, limit - 1)]
    for s in shown:
        t.add_row(Text("leader" if s.leader else "", style="bold magenta"),
                  Text(str(s.pid) if s.pid is not None else "?"), Text(clean(s.host)),
                  Text(f"up {dur(max(0.0, now - s.started))}" if s.started else ""),
                  beat(s.beat, now),
                  Text(clean(" ".join(f"{q}:{c}" for q, c in s.queues))))
    return _with_more(t, len(rows) - len(shown), "services", limit)


def cron_title(snap: Snapshot) -> Text:
    if not snap.cron:
        return line(("cron", "bold"), ("  no entries (or no config read)", "dim"))
    return line(("cron ", "bold"), str(len(snap.cron)))


def cron_section(rows: Sequence[CronRow], now: float, limit: int) -> RenderableType:
    t = _table("name", "when", "task", "next", header=False, wide={"task": 1})
    shown = rows if len(rows) <= limit else rows[:max(0, limit - 1)]
    for c in shown:
        if c.next_at is None:
            nxt = Text("never", style="dim")
        else:
            nxt = Text(f"in {dur(max(0.0, c.next_at - now))} "
                       f"({clock_utc(c.next_at, date=c.next_at - now >= 86400)})")
        t.add_row(Text(clean(c.name), style="bold"), Text(clean(c.when)), Text(clean(c.task)),
                  nxt)
    return _with_more(t, len(rows) - len(shown), "entries", limit)


# -- the frame --------------------------------------------------------------------------------
def share(budget: int, wants: Sequence[int], weights: Sequence[int]) -> list[int]:
    """Rows per section: one each first (in order), then by weight while rows are left."""
    got = [0] * len(wants)
    for rnd in range(max(wants, default=0) + 1):
        for i, want in enumerate(wants):
            for _ in range(1 if rnd == 0 else weights[i]):
                if budget > 0 and got[i] < want:
                    got[i] += 1
                    budget -= 1
        if budget <= 0:
            break
    return got


def dashboard(snap: Snapshot, width: int, height: int, notice: str = "", live: bool = True
              ) -> RenderableType:
    """The whole frame, `height` lines at most, each at most `width` columns (`live`: the
    screen that `q` quits, not a frame printed once)."""
    items = [len(snap.queues), snap.running_total, len(snap.failures), len(snap.services),
             len(snap.cron)]
    # Lines each section costs before its rows: titles, and the column headers.
    fixed = [1, 1 + (1 if snap.running else 0), 1, 1, 1]
    keep = len(items)
    while keep and 2 + sum(fixed[:keep]) > height:
        keep -= 1  # too short even for the titles: drop sections from the bottom
    rows = share(height - 2 - sum(fixed[:keep]), items[:keep], [3, 2, 1, 1, 1][:keep])
    rows += [0] * (len(items) - keep)
    out: list[RenderableType] = [header(snap, notice, live), activity(snap, width)]
    if keep > 0:
        out.append(queues_table(snap.queues, rows[0], width) if snap.queues
                   else line(("queues", "bold"), ("  none yet", "dim")))
    if keep > 1:
        out.append(running_title(snap))
        if snap.running:
            out.append(running_table(snap.running, snap.running_total, rows[1]))
    if keep > 2:
        out.append(failures_title(snap, width))
        if rows[2]:
            out.append(failures_table(snap.failures, snap.now, rows[2]))
    if keep > 3:
        out.append(services_title(snap))
        if rows[3]:
            out.append(services_table(snap.services, snap.now, rows[3]))
    if keep > 4:
        out.append(cron_title(snap))
        if rows[4]:
            out.append(cron_section(snap.cron, snap.now, rows[4]))
    return Group(*out)
