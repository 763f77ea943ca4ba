"""Finished jobs per second over the last hour, kept between refreshes of `jobrun top`: the
charts and the per-queue rates and run times read it, and each refresh reads from the store
only what changed (see `Window`)."""

from __future__ import annotations

import math
from typing import Any, TypeVar

from ..store.contract import DashboardRead
from .source import FileWatch

BUCKET = 5.0      # seconds per throughput bucket
HOUR = 3600.0
MINUTE = 60.0
LATE = 15.0       # finished_at is taken before the write lock: recount this margin each time


class Window:
    """Finished jobs per second over the last hour, kept between refreshes.

    The first update reads the hour; later ones count the last `LATE` seconds per second
    (finished_at can land a little in the past) from the index alone, and reread the rows
    only of the seconds whose count changed: under a busy service that is the last second or
    two, not the whole margin. The counts are read before the rows, so rows that land in
    between are counted again next time, never missed. A job sent back from dead stays
    counted until its second leaves the margin."""

    def __init__(self) -> None:
        self.seconds: dict[int, dict[tuple[str, str], int]] = {}  # (queue, state) counts
        self.runs: dict[int, dict[tuple[str, int], int]] = {}  # (queue, run-time ms bin)
        self.seen: dict[int, int] = {}  # every finished row per second, as last counted
        self.buckets: dict[int, dict[tuple[str, str], int]] = {}  # seconds per BUCKET, folded
        self.bucket_runs: dict[int, dict[tuple[str, int], int]] = {}  # once per update
        self.read_to: float | None = None
        self.watch = FileWatch()  # the store file's identity: a replaced file is reread

    def update(self, read: DashboardRead, now: float) -> None:
        first = math.ceil(now - HOUR)
        prev = self.read_to
        whole = prev is None or now - prev > HOUR or now < prev - LATE
        start = first if prev is None or whole else max(first, math.floor(prev - LATE))
        margin = max(first, math.floor(now - LATE)) if whole else start
        counts = {int(r["s"]): int(r["n"]) for r in read("top_finished_seconds",
                                                          {"since": margin, "until": now})}
        if whole:  # first read, a long pause or the clock went back: read it all
            self.seconds.clear()
            self.runs.clear()
            spans: list[tuple[float, float]] = [(first, now)]
        else:
            changed = {t for t in counts.keys() | self.seen.keys()
                       if t >= start and counts.get(t) != self.seen.get(t)}
            spans = _spans(sorted(changed), now)
        self.seen = counts
        for kept in (self.seconds, self.runs):
            for t in [t for t in kept if t < first or any(a <= t < b for a, b in spans)]:
                del kept[t]
        for since, until in spans:
            self._add(read("top_finished", {"width": 1.0, "since": since, "until": until}))
        self.read_to = now
        self.buckets, self.bucket_runs = _fold(self.seconds), _fold(self.runs)

    def _add(self, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            t, queue, state, lead, digits, n = (int(r["b"]), r["queue"], r["state"], r["lead"],
                                                r["digits"], int(r["n"]))
            counts = self.seconds.setdefault(t, {})
            counts[(queue, state)] = counts.get((queue, state), 0) + n
            ms = int(lead) * 10 ** max(0, int(digits) - len(str(lead)))
            runs = self.runs.setdefault(t, {})
            runs[(queue, ms)] = runs.get((queue, ms), 0) + n

    def minutes(self, now: float, queue: str, state: str, count: int = 60) -> tuple[int, ...]:
        """`queue`'s jobs finished in `state` per minute, the last `count` minutes."""
        cur = math.floor(now / BUCKET)
        per = round(MINUTE / BUCKET)
        out = [0] * count
        for b, counts in self.buckets.items():
            i = (cur - b) // per
            if 0 <= i < count:
                out[i] += counts.get((queue, state), 0)
        return tuple(reversed(out))

    def percentiles(self, queue: str, since: float, qs: tuple[float, ...] = (0.5, 0.95)
                    ) -> tuple[float | None, ...]:
        """Run-time percentiles (seconds, to two significant digits) of `queue`'s jobs
        finished since `since`; None when none finished."""
        hist: dict[int, int] = {}
        for b, runs in self.bucket_runs.items():
            if b * BUCKET >= since:
                for (q, ms), n in runs.items():
                    if q == queue:
                        hist[ms] = hist.get(ms, 0) + n
        return tuple(_percentile(hist, q) for q in qs)

    def per_queue(self, since: float) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for b, counts in self.buckets.items():
            if b * BUCKET >= since:
                for k, n in counts.items():
                    out[k] = out.get(k, 0) + n
        return out

    def totals(self, now: float, count: int, width: int = 1, state: str | None = None
               ) -> tuple[int, ...]:
        """Jobs per `width` buckets, the last `count` groups ending with the current bucket."""
        cur = math.floor(now / BUCKET)
        out = [0] * count
        for b, counts in self.buckets.items():
            i = (cur - b) // width
            if 0 <= i < count:
                out[i] += sum(n for (_, s), n in counts.items() if state is None or s == state)
        return tuple(reversed(out))


K = TypeVar("K")


def _fold(per_second: dict[int, dict[K, int]]) -> dict[int, dict[K, int]]:
    """Per-second counts folded into `BUCKET`-second buckets (what the charts read)."""
    out: dict[int, dict[K, int]] = {}
    for t, counts in per_second.items():
        into = out.setdefault(math.floor(t / BUCKET), {})
        for k, n in counts.items():
            into[k] = into.get(k, 0) + n
    return out


def _spans(changed: list[int], now: float, most: int = 4) -> list[tuple[float, float]]:
    """Consecutive changed seconds as [since, until) ranges; more than `most` ranges read as
    one (a few queries, not one per straggler)."""
    spans: list[tuple[float, float]] = []
    for t in changed:
        if spans and spans[-1][1] == t:
            spans[-1] = (spans[-1][0], t + 1)
        else:
            spans.append((t, t + 1))
    if len(spans) > most:
        spans = [(spans[0][0], spans[-1][1])]
    return [(a, min(b, now)) for a, b in spans]


def _percentile(hist: dict[int, int], q: float) -> float | None:
    total = sum(hist.values())
    if not total:
        return None
    rank, seen = max(1, math.ceil(q * total)), 0
    for ms in sorted(hist):
        seen += hist[ms]
        if seen >= rank:
            return ms / 1000
    return None  # not reached: the ranks add up to total
