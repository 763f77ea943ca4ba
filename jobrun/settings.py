"""The typed settings of jobrun.toml, and the bounds of every duration key.

config.py reads a file into these; the rest of jobrun only reads them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .cron import parse_duration

DEFAULT_QUEUE = "default"
AHEAD_PER_SLOT = 64  # held claims per worker slot at most, prefetch unset (was 16: bench_io +20%)
DEFAULT_CONCURRENCY = 8
EXECUTORS = ("thread", "process", "async")


_DAY = 86400.0
_YEAR = 366 * _DAY
# (least, most) seconds of every duration key. The floors stop typos ("1ms" for "1m") and
# zeros that would spin a loop or lose work; the ceilings stop values no one means, which
# also overflow datetimes (now + 100000000d) in the rounds that use them. An interval over
# a year reads better as a schedule (`@yearly`), so `every` stops at 366 days.
BOUNDS: dict[str, tuple[float, float]] = {
    "every": (1.0, _YEAR),             # the scheduler fires at most about once a second
    "lease": (1.0, _DAY),              # renewed at lease/3, checked every <= 0.5 s
    "poll": (0.01, 300.0),             # a wake-up fallback: below 10 ms it only burns CPU
    "record_delay": (0.0, 1.0),        # 0: every outcome is its own commit
    "shutdown_timeout": (0.0, _DAY),   # 0: stop at once
    "misfire_grace": (0.0, _YEAR),
    "retention": (60.0, 100 * _YEAR),  # a result must outlive the Job.result() that waits
    "dead_retention": (60.0, 100 * _YEAR),
    "retry_base": (0.001, _DAY),
    "retry_cap": (0.001, _YEAR),
    "timeout": (0.01, _YEAR),
}
WHY = {
    "every": "below 1s the scheduler floods the store; beyond a year use a schedule",
    "lease": "a shorter lease expires between heartbeats and runs jobs twice",
    "poll": "the service wakes every poll: 0 spins, hours look hung",
    "record_delay": "results wait that long to be seen, and a crash re-runs what was held",
    "retention": "finished jobs must stay readable for a while",
    "dead_retention": "dead jobs must stay readable for a while",
    "retry_base": "0 retries in a hot loop",
    "retry_cap": "0 retries in a hot loop",
    "timeout": "0 fails every attempt",
}
WHY.update({k: "no one means longer" for k in BOUNDS if k not in WHY})


def human(seconds: float) -> str:
    """1 -> "1s", 0.01 -> "10ms", 300 -> "5m", 31622400 -> "366d": how bounds are written."""
    for unit, size in (("d", _DAY), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if (seconds >= size and (seconds / size).is_integer()) or (unit == "s" and seconds >= 1):
            return f"{seconds / size:.15g}{unit}"
    return f"{seconds * 1000:.15g}ms" if seconds else "0s"


def duration(value: Any) -> float:
    """Seconds from 30, 1.5, "30s", "5m", "1h30m", "7d", "250ms"; ValueError otherwise."""
    return parse_duration(value)


def parse_listen(text: str) -> tuple[str, int]:
    """"127.0.0.1:9464", ":9464" (loopback), "0.0.0.0:9464"; ValueError otherwise."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen {text!r} must be HOST:PORT, e.g. \"127.0.0.1:9464\"")
    return (host.strip("[]") or "127.0.0.1"), int(port)


@dataclass(frozen=True)
class QueueConfig:
    name: str
    concurrency: int = DEFAULT_CONCURRENCY
    executor: str = "thread"
    max_attempts: int | None = None
    retry_base: float | None = None
    retry_cap: float | None = None
    timeout: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    prefetch: int | None = None  # jobs held ahead of free workers; None: as the load asks

    @property
    def ahead(self) -> int:
        """The most jobs a service serving this queue alone holds ahead of its free workers:
        the `prefetch` given, else AHEAD_PER_SLOT per slot (an unset prefetch holds only
        about what the queue finishes per round, so slow jobs are hardly held at all)."""
        if self.prefetch is not None:
            return self.prefetch
        return AHEAD_PER_SLOT * self.concurrency


@dataclass(frozen=True)
class CommandTask:
    name: str
    command: tuple[str, ...]
    queue: str | None = None
    timeout: float | None = None
    max_attempts: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    shell: bool = False


@dataclass(frozen=True)
class CronEntry:
    name: str
    schedule: str | None = None
    every: float | None = None
    timezone: str = "UTC"
    task: str | None = None
    command: tuple[str, ...] | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    misfire: str = "skip"


@dataclass(frozen=True)
class Settings:
    file: str | None = None
    store: str | None = None
    shutdown_timeout: float = 30.0
    durability: str = "normal"
    imports: tuple[str, ...] = ()
    app: str | None = None
    lease: float = 60.0
    poll: float = 1.0
    record_delay: float = 0.1  # a quiet service holds outcomes for its next claim this long
    misfire_grace: float = 60.0
    retention: float = 7 * 86400.0
    dead_retention: float = 30 * 86400.0
    log_args: bool = False
    show_args: bool = True  # [ui]: false hides arguments in `jobrun top` (a shared screen)
    log_format: str = "text"
    log_level: str = "INFO"
    queues: dict[str, QueueConfig] = field(default_factory=dict)
    tasks: dict[str, CommandTask] = field(default_factory=dict)
    cron: tuple[CronEntry, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)
    alerts: dict[str, Any] = field(default_factory=dict)

    def queue(self, name: str) -> QueueConfig:
        return self.queues.get(name) or QueueConfig(name)

    @property
    def folder(self) -> str:
        return os.path.dirname(os.path.abspath(self.file)) if self.file else os.getcwd()
