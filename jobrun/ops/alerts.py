"""`[alerts]`: thresholds checked by the leading service, one warning per breach.

    [alerts]
    oldest_queued_age = "5m"      # a queue's oldest queued job is older than this
    dead_per_hour = 10            # more jobs than this went dead in the last hour
    on_alert = ["/usr/local/bin/page-me"]   # optional: run with the details in its env

A breach logs once when it starts (and runs `on_alert`), and once when it clears.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from ..cron import parse_duration as duration

log = logging.getLogger("jobrun.alerts")
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


class Alerter:
    def __init__(self) -> None:
        self.active: dict[tuple[str, str], Breach] = {}

    def update(self, alerts: dict[str, Any], stats: dict[str, dict[str, Any]]) -> list[Breach]:
        """Log new breaches once (and run on_alert), and clearings; returns the new ones."""
        now = {(b.name, b.queue): b for b in breaches(alerts, stats)}
        new = [b for k, b in now.items() if k not in self.active]
        for k, b in self.active.items():
            if k not in now:
                log.info("alert cleared: %s", b.name + f" on queue {b.queue!r}")
        self.active = now
        for b in new:
            log.warning("alert: %s", b.text(), extra={"jobrun": {
                "event": "alert", "alert": b.name, "queue": b.queue, "value": b.value,
                "threshold": b.threshold}})
            if alerts.get("on_alert"):
                env = {**os.environ, "JOBRUN_ALERT": b.name, "JOBRUN_QUEUE": b.queue,
                       "JOBRUN_VALUE": f"{b.value:g}", "JOBRUN_THRESHOLD": f"{b.threshold:g}",
                       "JOBRUN_MESSAGE": b.text()}
                try:
                    import subprocess  # here: a service that never alerts never loads it

                    subprocess.Popen(list(alerts["on_alert"]), env=env,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
                except OSError as exc:
                    log.error("on_alert %s failed: %s", alerts["on_alert"], exc)
        return new
