"""Run windows of jobs, as the executor and limit tests measure concurrency."""

from __future__ import annotations


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """How many [t0, t1] intervals are open at once, at most (an end before a start at the
    same instant)."""
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans],
                    key=lambda e: (e[0], e[1]))
    now = top = 0
    for _, d in events:
        now += d
        top = max(top, now)
    return top
