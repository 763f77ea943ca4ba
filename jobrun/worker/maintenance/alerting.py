"""`[alerts]` thresholds, checked by the leading service only (one service alerts for the
host): a breach logs once when it starts (and runs `on_alert`), and once when it clears. The
rules themselves are pure, in jobrun/ops/alerts.py. `oldest_queued_age` is the duty "jobs
queued for too long"."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from ...ops.alerts import Breach, breaches
from ...ops.stats import queue_stats

if TYPE_CHECKING:
    from . import ServiceView


log = logging.getLogger("jobrun.alerts")


class Alerter:
    """The breaches active now, so each start and each clearing is logged once."""

    def __init__(self) -> None:
        self.active: dict[tuple[str, str], Breach] = {}

    def check(self, v: ServiceView, alerts: dict[str, Any], now: float) -> None:
        """The duty: this round's queue numbers against the thresholds."""
        self.update(alerts, queue_stats(v.store, now=now))

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
