"""How a connection waits for the store's write lock: short, even sleeps.

SQLite's own busy timeout sleeps 1, 2, 5, 10, 15, 20, 25... ms between tries, so a writer
that finds the lock taken for 2 ms waits 3 ms, and one that misses it three times waits
18 ms: a web request's `enqueue` beside a busy service saw exactly those steps (p99 18 ms,
max 53 and 103 ms). Here the sleeps start at 50 us and double up to 0.5 ms, so a waiter
takes the lock within about half a millisecond of its release, for the same total wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import apsw

FIRST = 50e-6     # s: the first sleep
LONGEST = 5e-4    # s: the sleeps never grow past this
_RAMP = 3         # the doubling sleeps are tries 0..3: 50, 100, 200, 400 us


def delay(tries: int, total: float) -> float | None:
    """The sleep after `tries` earlier sleeps of a wait that may last `total` s (pure);
    None once that much was slept: give up."""
    if tries <= _RAMP:
        slept, step = FIRST * ((1 << tries) - 1), FIRST * (1 << tries)
    else:
        slept = FIRST * ((1 << (_RAMP + 1)) - 1) + (tries - _RAMP - 1) * LONGEST
        step = LONGEST
    if slept >= total:
        return None
    return min(step, total - slept)


def handler(timeout_ms: int) -> Callable[[int], bool]:
    """A busy handler for `apsw.Connection.set_busy_handler`: sleep, then try again."""
    total = timeout_ms / 1000

    def wait(tries: int) -> bool:
        d = delay(tries, total)
        if d is None:
            return False
        time.sleep(d)  # releases the GIL: the lock holder may be a thread of this process
        return True

    return wait


def wait_briefly(conn: apsw.Connection, timeout_ms: int) -> None:
    """Make conn wait up to timeout_ms for a lock, trying again every half millisecond."""
    conn.set_busy_handler(handler(timeout_ms))
