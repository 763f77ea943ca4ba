"""Limits on claiming: host-wide queue caps, per-key concurrency, rate limits, fairness.

Pure: the store feeds in what it read inside its claim transaction and writes back what this
decides. Keys are served round robin, so a flood of one key cannot starve the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidValue

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour|d|day)"
                   r"\s*$", re.I)
_PERIOD = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
           "h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}


@dataclass(frozen=True)
class Rate:
    """`count` per `period` seconds: a token bucket holding at most `count` tokens."""

    count: float
    period: float

    @property
    def per_second(self) -> float:
        return self.count / self.period


def parse_rate(text: Any) -> Rate:
    """"10/s", "100/m", "5/h", "1/10s"; InvalidValue (a ValueError) naming the value otherwise."""
    m = _RATE.match(text) if isinstance(text, str) else None
    if not m or float(m.group(1)) <= 0:
        raise InvalidValue(f"{text!r} is not a rate (try \"10/s\", \"100/m\", \"5/h\")")
    mult = float(m.group(2)) if m.group(2) else 1.0
    if mult <= 0:
        raise InvalidValue(f"{text!r} has a zero period")
    return Rate(float(m.group(1)), mult * _PERIOD[m.group(3).lower()])


@dataclass(frozen=True)
class Limits:
    """What the service enforces when claiming, from its config and registered tasks."""

    caps: dict[str, int] = field(default_factory=dict)            # queue -> cap (host-wide)
    queue_rates: dict[str, Rate] = field(default_factory=dict)    # queue -> rate
    task_rates: dict[str, Rate] = field(default_factory=dict)     # task -> rate
    key_concurrency: dict[str, int] = field(default_factory=dict)  # task -> per-key cap
    key_rates: dict[str, Rate] = field(default_factory=dict)      # task -> per-key rate

    def free_tasks(self, queue: str, tasks: list[str]) -> list[str]:
        """The tasks of `tasks` whose jobs in `queue` no rate or key limit counts: only they
        may be held ahead of a free worker (a limit counts what runs)."""
        if queue in self.queue_rates:
            return []
        return [t for t in tasks if t not in self.task_rates and
                t not in self.key_concurrency and t not in self.key_rates]

    def limited(self, queue: str, tasks_by_queue: dict[str, set[str]]) -> bool:
        """Whether claiming from `queue` needs the careful path (keys or rates)."""
        if queue in self.queue_rates:
            return True
        tasks = tasks_by_queue.get(queue, set())
        return any(t in self.task_rates or t in self.key_concurrency or t in self.key_rates
                   for t in tasks)


@dataclass
class Bucket:
    tokens: float
    at: float

    def refill(self, rate: Rate, now: float) -> None:
        if now > self.at:
            self.tokens = min(rate.count, self.tokens + (now - self.at) * rate.per_second)
            self.at = now

    def wait(self, rate: Rate) -> float:
        """Seconds until one token is there."""
        return max(0.0, (1.0 - self.tokens) / rate.per_second)


@dataclass(frozen=True)
class Candidate:
    id: int
    task: str
    priority: int
    ckey: str | None


def round_robin(heads: dict[str | None, list[Candidate]]) -> list[Candidate]:
    """Interleave the keys' queued jobs: every key's first, then every key's second, ...;
    within a rank, higher priority then older first."""
    out: list[Candidate] = []
    rank = 0
    while True:
        layer = [jobs[rank] for jobs in heads.values() if len(jobs) > rank]
        if not layer:
            return out
        layer.sort(key=lambda c: (-c.priority, c.id))
        out.extend(layer)
        rank += 1


def choose(candidates: list[Candidate], budget: int, limits: Limits, queue: str,
           running_by_key: dict[str, int], buckets: dict[str, Bucket], now: float
           ) -> tuple[list[int], float | None]:
    """Pick up to `budget` jobs within the key caps and rate buckets (consumed in place).

    Returns the ids and, if a rate held something back, the seconds until a token is due."""
    chosen: list[int] = []
    taken: dict[str, int] = {}
    wait: float | None = None

    def bucket(name: str, rate: Rate) -> Bucket:
        b = buckets.get(name)
        if b is None:
            b = buckets[name] = Bucket(rate.count, now)
        b.refill(rate, now)
        return b

    def held(w: float) -> None:
        nonlocal wait
        wait = w if wait is None else min(wait, w)

    qrate = limits.queue_rates.get(queue)
    for c in candidates:
        if len(chosen) >= budget:
            break
        if c.ckey is not None and c.task in limits.key_concurrency and \
                running_by_key.get(c.ckey, 0) + taken.get(c.ckey, 0) >= \
                limits.key_concurrency[c.task]:
            continue
        need: list[tuple[Bucket, Rate]] = []
        if qrate is not None:
            need.append((bucket(f"queue:{queue}", qrate), qrate))
        trate = limits.task_rates.get(c.task)
        if trate is not None:
            need.append((bucket(f"task:{c.task}", trate), trate))
        krate = limits.key_rates.get(c.task)
        if krate is not None and c.ckey is not None:
            need.append((bucket(f"key:{c.ckey}", krate), krate))
        short = [(b, r) for b, r in need if b.tokens < 1.0]
        if short:
            held(max(b.wait(r) for b, r in short))
            if qrate is not None and short[0][0] is buckets.get(f"queue:{queue}"):
                break  # the queue's own rate: nothing else can go either
            continue
        for b, _ in need:
            b.tokens -= 1.0
        chosen.append(c.id)
        if c.ckey is not None:
            taken[c.ckey] = taken.get(c.ckey, 0) + 1
    return chosen, wait
