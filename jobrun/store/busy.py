"""How a connection waits for the store's write lock: short, even sleeps; and the busy
SQLite returns without waiting, told apart and retried where it can be.

SQLite's own busy timeout sleeps 1, 2, 5, 10, 15, 20, 25... ms between tries, so a writer
that finds the lock taken for 2 ms waits 3 ms, and one that misses it three times waits
18 ms: a web request's `enqueue` beside a busy service saw exactly those steps (p99 18 ms,
max 53 and 103 ms). Here the sleeps start at 50 us and double up to 0.5 ms, so a waiter
takes the lock within about half a millisecond of its release, for the same total wait.

Not every SQLITE_BUSY is a wait that ran out. A connection that holds a read lock and wants
the write lock while another reader wants it too is a deadlock in rollback-journal mode:
SQLite fails one of them at once, without calling the busy handler. Start-up hits exactly
that (`PRAGMA journal_mode=WAL` reads, then writes) when two processes open a file that is
not WAL yet; `retried` runs such a step again until it passes, and `why` tells an error
message which kind of busy it was.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import TypeVar

import apsw

FIRST = 50e-6     # s: the first sleep
LONGEST = 5e-4    # s: the sleeps never grow past this
_RAMP = 3         # the doubling sleeps are tries 0..3: 50, 100, 200, 400 us

T = TypeVar("T")

#: Why a busy came back: the handler slept its whole timeout; SQLite did not wait (a
#: deadlock it breaks at once); a start-up step retried that deadlock for the whole timeout.
RAN_OUT, AT_ONCE, RETRIED = "ran out", "at once", "retried"
#: ... or the connection is the caller's own (`connection=`): its timeout is not ours to know.
THEIRS = "theirs"


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


class Patience:
    """A busy handler for `apsw.Connection.set_busy_handler` (sleep, then try again) that
    remembers whether its last wait ran out, so a busy error can say which kind it was."""

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self.total = timeout_ms / 1000
        self.outcome: str | None = None  # RAN_OUT or RETRIED until `why` reads it

    def __call__(self, tries: int) -> bool:
        if tries == 0:
            self.outcome = None
        d = delay(tries, self.total)
        if d is None:
            self.outcome = RAN_OUT
            return False
        time.sleep(d)  # releases the GIL: the lock holder may be a thread of this process
        return True

    def why(self) -> str:
        """Why the busy just raised came back (RAN_OUT, RETRIED or AT_ONCE); read once."""
        outcome, self.outcome = self.outcome, None
        return outcome or AT_ONCE


_patience: weakref.WeakKeyDictionary[apsw.Connection, Patience] = weakref.WeakKeyDictionary()


def wait_briefly(conn: apsw.Connection, timeout_ms: int) -> Patience:
    """Make conn wait up to timeout_ms for a lock, trying again every half millisecond."""
    patience = Patience(timeout_ms)
    conn.set_busy_handler(patience)
    _patience[conn] = patience
    return patience


def why(conn: apsw.Connection | None) -> str | None:
    """Why conn's last busy came back (RAN_OUT, RETRIED, AT_ONCE); THEIRS for a connection
    that is not ours (a caller's `connection=`); None when no connection is named."""
    if conn is None:
        return None
    patience = _patience.get(conn)
    return patience.why() if patience is not None else THEIRS


def retried(conn: apsw.Connection, step: Callable[[], T]) -> T:
    """step(), run again while SQLite fails it busy at once (the deadlock of two readers
    that both want to write), with the same even sleeps up to conn's timeout. A step that
    waited its whole timeout is not run again: the lock was held all along."""
    patience = _patience.get(conn)
    if patience is None:  # a connection without our busy handler: no even sleeps to repeat
        return step()
    tries = 0
    while True:
        try:
            return step()
        except apsw.BusyError:
            if patience.outcome == RAN_OUT:
                raise
            d = delay(tries, patience.total)
            if d is None:
                patience.outcome = RETRIED
                raise
            tries += 1
            time.sleep(d)
