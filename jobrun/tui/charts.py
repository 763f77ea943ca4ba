"""The console's overview (pure, from a Snapshot): per queue, jobs finished and failed per
minute over the last hour and their run-time p50/p95, then the live services and the cron
entries with their last and next fires in their zone and in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from rich.console import Group, RenderableType
from rich.text import Text

from .snapshot import CronRow, QueueRow, Snapshot
from .views import dur, line, num, services_table, services_title, sparkline

LABEL = 6  # "done  ", "failed"


def runtime(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1000:.0f}ms" if s < 1 else dur(s)


def queue_chart(q: QueueRow, width: int) -> Text:
    """Three lines: the queue and its hour; finished per minute; failed per minute."""
    span = max(10, min(len(q.done_minutes), width - LABEL - 8))
    done, dead = sum(q.done_minutes), sum(q.dead_minutes)
    out = line((q.name, "bold"), f"  hour: {num(done)} done, {num(dead)} failed  "
               f"run time p50 {runtime(q.p50)} p95 {runtime(q.p95)}")
    for label, series, style in (("done", q.done_minutes, "green"),
                                 ("failed", q.dead_minutes, "red")):
        out.append(f"\n{label:<{LABEL}} ")
        out.append(sparkline(series, span, style))
        out.append(f" {num(max(series, default=0))}/m", style="dim")
    return out


def _at(ts: float, zone: str) -> str:
    """A fire time in its zone, then in UTC when the zone is another."""
    utc = datetime.fromtimestamp(ts, UTC)
    if zone == "UTC":
        return utc.strftime("%Y-%m-%d %H:%MZ")
    local = utc.astimezone(ZoneInfo(zone))
    return f"{local.strftime('%Y-%m-%d %H:%M %Z')} ({utc.strftime('%H:%MZ')})"


def cron_lines(rows: tuple[CronRow, ...], now: float) -> Text:
    if not rows:
        return line(("cron", "bold"), ("  no entries (or no config read)", "dim"))
    out = line(("cron ", "bold"), str(len(rows)))
    for c in rows:
        out.append(f"\n{c.name}", style="bold")
        out.append(f"  {c.when}  {c.task}")
        last = _at(c.last_at, c.timezone) + f", {dur(max(0.0, now - c.last_at))} ago" \
            if c.last_at is not None else "never"
        nxt = _at(c.next_at, c.timezone) + f", in {dur(max(0.0, c.next_at - now))}" \
            if c.next_at is not None else "never"
        out.append(f"\n  last {last}\n  next {nxt}")
    return out


def overview(snap: Snapshot, width: int) -> RenderableType:
    """The overview screen: charts, services, cron (it scrolls when taller than the screen)."""
    parts: list[RenderableType] = [line(("charts", "bold"),
                                        ("  per minute, the last hour, from the store", "dim"))]
    parts += [queue_chart(q, width) for q in snap.queues] or [Text("no queues yet", "dim")]
    parts += [Text(""), services_title(snap)]
    if snap.services:
        parts.append(services_table(snap.services, snap.now, len(snap.services)))
    parts += [Text(""), cron_lines(snap.cron, snap.now)]
    return Group(*parts)
