"""Backoff bounds and the failure decision (pure)."""

from __future__ import annotations

import random

from jobrun.attempt import after_failure
from jobrun.errors import Permanent, Retry, UnknownTask
from jobrun.model import ACTIVE, FINISHED, Claim, JobState, can_move
from jobrun.retry import backoff, ceiling


def test_full_jitter_bounds() -> None:
    rng = random.Random(1)
    for attempt in range(1, 30):
        cap = ceiling(attempt, 1.0, 300.0)
        assert cap == min(300.0, 2.0 ** (attempt - 1))
        xs = [backoff(attempt, 1.0, 300.0, rng) for _ in range(200)]
        assert all(0.0 <= x <= cap for x in xs)
        assert max(xs) > cap * 0.8 and min(xs) < cap * 0.2  # spread over the whole range
    assert ceiling(10_000, 1.0, 300.0) == 300.0


def claim(attempt: int, max_attempts: int = 3, **opts: float) -> Claim:
    return Claim(1, "t:f", "default", [], {}, attempt, max_attempts, 7, None, None, dict(opts))


def test_decide() -> None:
    o = after_failure(claim(1, retry_base=2.0), ValueError("x"), now=100.0, rng=random.Random(0))
    assert o.state == "retrying" and 100.0 <= (o.run_at or 0) <= 102.0
    assert o.error and o.error["type"] == "ValueError" and o.error["attempt"] == 1
    assert after_failure(claim(3), ValueError("x"), now=1.0).state == "dead"
    assert after_failure(claim(1), Permanent("no"), now=1.0).state == "dead"
    assert after_failure(claim(1), UnknownTask("no"), now=1.0).state == "dead"
    r = after_failure(claim(1), Retry(delay=42), now=1.0)
    assert r.state == "retrying" and r.run_at == 43.0
    assert after_failure(claim(3), Retry(delay=1), now=1.0).state == "dead"


def test_state_machine() -> None:
    S = JobState
    assert can_move(S.QUEUED, S.RUNNING) and can_move(S.RUNNING, S.QUEUED)
    assert not can_move(S.SUCCEEDED, S.QUEUED) and can_move(S.DEAD, S.QUEUED)
    assert not can_move(S.SCHEDULED, S.RUNNING)
    assert set(S) == ACTIVE | FINISHED and not ACTIVE & FINISHED
