"""`[alerts]`: the thresholds, their checks, and which are crossed (pure: the leading
service's `worker/maintenance/alerting.py` logs and runs `on_alert`).

    [alerts]
    oldest_queued_age = "5m"      # a queue's oldest queued job is older than this
    dead_per_hour = 10            # more jobs than this went dead in the last hour
    on_alert = ["/usr/local/bin/page-me"]   # optional: run with the details in its env

A breach logs once when it starts (and runs `on_alert`), and once when it clears.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..cron import parse_duration as duration

KEYS = {"oldest_queued_age", "dead_per_hour", "on_alert"}


@dataclass(frozen=True)
class Breach:
    name: str
    queue: str
    value: float
    threshold: float

    def text(self) -> str:
        return f"{self.name} on queue {self.queue!r}: {self.value:g} > {self.threshold:g}"


def check_config(alerts: dict[str, Any]) -> list[str]:
    """Problems with an [alerts] table, as (key, reason) sentences."""
    problems = []
    for k in alerts:
        if k not in KEYS:
            problems.append(f"unknown key {k!r} (known: {', '.join(sorted(KEYS))})")
    if "oldest_queued_age" in alerts:
        try:
            duration(alerts["oldest_queued_age"])
        except ValueError as exc:
            problems.append(f"oldest_queued_age: {exc}")
    d = alerts.get("dead_per_hour")
    if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 0):
        problems.append(f"dead_per_hour must be a whole number >= 0, not {d!r}")
    cmd = alerts.get("on_alert")
    if cmd is not None and (not isinstance(cmd, list) or not cmd or
                            not all(isinstance(c, str) for c in cmd)):
        problems.append("on_alert must be a non-empty list of strings")
    return problems


def breaches(alerts: dict[str, Any], stats: dict[str, dict[str, Any]]) -> set[Breach]:
    """Pure: the thresholds crossed by these queue stats."""
    out = set()
    age = alerts.get("oldest_queued_age")
    dead = alerts.get("dead_per_hour")
    for q, v in stats.items():
        if age is not None and v["oldest_queued_age"] > duration(age):
            out.add(Breach("oldest_queued_age", q, v["oldest_queued_age"], duration(age)))
        if dead is not None and v["dead_last_hour"] > dead:
            out.add(Breach("dead_per_hour", q, v["dead_last_hour"], float(dead)))
    return out
