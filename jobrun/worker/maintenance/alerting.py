"""`[alerts]` thresholds, checked by the leading service only (one service alerts for the
host): one warning per breach, see jobrun/ops/alerts.py. `oldest_queued_age` is the duty
"jobs queued for too long"."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...ops.alerts import Alerter
from ...ops.stats import queue_stats

if TYPE_CHECKING:
    from . import ServiceView


class Alerting:
    def __init__(self) -> None:
        self._alerter = Alerter()

    def check(self, v: ServiceView, alerts: dict[str, Any], now: float) -> None:
        self._alerter.update(alerts, queue_stats(v.store, now=now))
