"""Backoff: exponential with full jitter, pure given the random source."""

from __future__ import annotations

import random
from dataclasses import dataclass

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_BASE = 1.0
DEFAULT_CAP = 300.0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    base: float = DEFAULT_BASE
    cap: float = DEFAULT_CAP


def ceiling(attempt: int, base: float = DEFAULT_BASE, cap: float = DEFAULT_CAP) -> float:
    """The most a retry after `attempt` (1-based) may wait: min(cap, base * 2**(attempt-1))."""
    if attempt < 1:
        attempt = 1
    # Bound the exponent so huge attempt counts cannot overflow.
    return float(min(cap, base * (2.0 ** min(attempt - 1, 62))))


def backoff(attempt: int, base: float = DEFAULT_BASE, cap: float = DEFAULT_CAP,
            rng: random.Random | None = None) -> float:
    """Full jitter (AWS architecture blog): uniform in [0, ceiling]. Spreads retry storms."""
    r = rng.random() if rng is not None else random.random()
    return r * ceiling(attempt, base, cap)
