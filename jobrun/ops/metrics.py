"""Prometheus metrics: `[metrics] listen = "127.0.0.1:9464"` serves the text exposition.

Queue depth and oldest-queued age are gauges read from the store at scrape time (cheap
indexed reads); outcomes are counted and timed per task as this service records them.
It listens on loopback unless told otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .. import clock
from ..config import parse_listen
from ..store import open_store
from ..store.contract import Store
from ..workflows.run import RECORDED
from .stats import queue_stats

log = logging.getLogger("jobrun.metrics")


class _QueueCollector(Collector):
    def __init__(self, store_path: str) -> None:
        self._path = store_path
        self._store: Store | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self._store is None:
            self._store = open_store(self._path, readonly=True)
        data = queue_stats(self._store, now=clock.now())
        depth = GaugeMetricFamily("jobrun_queue_jobs", "Jobs per queue and state",
                                  labels=["queue", "state"])
        age = GaugeMetricFamily("jobrun_oldest_queued_age_seconds",
                                "Age of the oldest queued job per queue", labels=["queue"])
        rate = GaugeMetricFamily("jobrun_failure_rate", "Dead / finished over the last hour",
                                 labels=["queue"])
        for q, v in sorted(data.items()):
            # held: claimed ahead of a free worker, not started (not counted as running)
            for state in ("queued", "scheduled", "running", "held", "retrying", "dead"):
                depth.add_metric([q, state], v[state])
            age.add_metric([q], v["oldest_queued_age"])
            rate.add_metric([q], v["failure_rate"])
        yield depth
        yield age
        yield rate


class _StepCollector(Collector):
    """Workflow steps this service recorded, by kind (step, sleep, event, gather, enqueue)
    and state (succeeded, failed, waiting, retrying)."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        steps = CounterMetricFamily("jobrun_workflow_steps", "Workflow step records",
                                    labels=["kind", "state"])
        for (kind, state), n in sorted(RECORDED.items()):
            steps.add_metric([kind, state], n)
        yield steps


class Metrics:
    """The service's metrics and the HTTP endpoint serving them."""

    def __init__(self, store_path: str, listen: str) -> None:
        self.host, self.port = parse_listen(listen)
        self.registry = CollectorRegistry()
        self.outcomes = Counter("jobrun_jobs", "Attempts ended, by outcome",
                                ["queue", "task", "outcome"], registry=self.registry)
        self.duration = Histogram("jobrun_job_duration_seconds", "Attempt durations per task",
                                  ["task"], registry=self.registry,
                                  buckets=(.001, .005, .01, .05, .1, .5, 1, 5, 10, 60, 300))
        self.registry.register(_QueueCollector(store_path))
        self.registry.register(_StepCollector())
        self._server: Any = None

    def start(self) -> None:
        self._server, _thread = start_http_server(self.port, addr=self.host,
                                                  registry=self.registry)
        log.info("metrics on http://%s:%s/metrics", self.host, self.port)

    def observe(self, queue: str, task: str, outcome: str, duration: float | None) -> None:
        self.outcomes.labels(queue, task, outcome).inc()
        if duration is not None:
            self.duration.labels(task).observe(duration)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
