"""The PostgreSQL store's connection pool: connections made on demand in the caller's thread
and lent without a round trip.

Why not psycopg_pool: its check on every getconn is a round trip (half of a single
enqueue's cost), and after repeated connection cuts its background reconnection backs off
(1, 2, 4, 8 ... s) while the slots stay reserved, so every caller waited out its 30 s timeout
(issue 16). Here an idle connection is lent when its socket is quiet (a backend that was
terminated has sent its FATAL message and closed: the socket reads ready), a broken one is
dropped when it is given back or found, and a free slot is filled by the caller that needs
it, at once: a failed connect is that caller's error, never a stall of the others.
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from .. import clock
from ..errors import StoreError

#: Seconds a caller waits for a connection when all of them are lent out.
WAIT = 10.0
#: An idle connection unused this long is closed (a burst's connections do not linger).
MAX_IDLE = 600.0
#: A connection this old is closed when given back (server-side memory does not grow).
MAX_LIFETIME = 3600.0

Conn = psycopg.Connection[Any]


def _readable(fd: int) -> bool:
    """Whether the socket has something to read (or hung up) without blocking."""
    if hasattr(select, "poll"):
        p = select.poll()
        p.register(fd, select.POLLIN)
        return bool(p.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # pragma: no cover - no poll (Windows)


class Pool:
    """At most `max_size` connections to `location`, shared by threads."""

    def __init__(self, location: str, shown: str, *, max_size: int, kwargs: dict[str, Any],
                 configure: Callable[[Conn], None], wait: float = WAIT) -> None:
        self.location, self.shown, self.max_size, self.wait = location, shown, max_size, wait
        self._kwargs, self._configure = kwargs, configure
        self._cond = threading.Condition()
        self._idle: collections.deque[tuple[Conn, float]] = collections.deque()
        self._born: dict[Conn, float] = {}  # every connection made and not yet closed
        self._size = 0  # connections lent, idle, or being made
        self._closed = False
        self._pid = os.getpid()

    def connect(self) -> Conn:
        """A new connection, configured; psycopg's error if the server refuses it."""
        conn = psycopg.connect(self.location, **self._kwargs)
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def open(self) -> None:
        """One connection made now: a server down or a bad URL is one error at once."""
        self.putconn(self.getconn())

    def getconn(self, *, checked: bool = False) -> Conn:
        """A connection to use and give back (putconn): an idle one whose socket is quiet
        (asked with a round trip if `checked`, or if something is waiting on it), else a
        new one if a slot is free; waits for one given back up to `wait` seconds."""
        deadline = clock.monotonic() + self.wait
        while True:
            with self._cond:
                conn = self._take(deadline)
            if conn is None:
                return self._new()
            if self._lendable(conn, checked):
                return conn
            self._discard(conn)

    def putconn(self, conn: Conn) -> None:
        """Given back: kept if it is idle and sound, else closed and its slot freed."""
        with self._cond:
            self._after_fork()
            if conn not in self._born:  # made by the parent process: not ours to touch
                return
        if conn.pgconn.transaction_status in (TransactionStatus.INTRANS,
                                              TransactionStatus.INERROR):
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
        now = clock.monotonic()
        if (conn.closed or conn.pgconn.transaction_status != TransactionStatus.IDLE
                or self._closed or now - self._born.get(conn, now) > MAX_LIFETIME):
            self._discard(conn)
            return
        stale: list[Conn] = []
        with self._cond:
            self._idle.append((conn, now))
            while self._idle and now - self._idle[0][1] > MAX_IDLE:
                stale.append(self._idle.popleft()[0])
            self._cond.notify()
        for old in stale:
            self._discard(old)

    @contextlib.contextmanager
    def connection(self, *, checked: bool = False) -> Iterator[Conn]:
        conn = self.getconn(checked=checked)
        try:
            yield conn
        finally:
            self.putconn(conn)

    def close(self) -> None:
        with self._cond:
            self._after_fork()
            self._closed = True
            idle = [c for c, _ in self._idle]
            self._idle.clear()
            self._cond.notify_all()
        for conn in idle:
            self._discard(conn)

    # -- inside -------------------------------------------------------------------------------
    def _take(self, deadline: float) -> Conn | None:
        """Under the lock: an idle connection (the most recently used), or None when a slot
        was reserved for the caller to fill."""
        self._after_fork()
        while True:
            if self._closed:
                raise StoreError(f"store {self.shown}: the store is closed")
            if self._idle:
                return self._idle.pop()[0]
            if self._size < self.max_size:
                self._size += 1
                return None
            left = deadline - clock.monotonic()
            if left <= 0:
                raise StoreError(f"store {self.shown}: no connection to the server came free "
                                 f"within {self.wait:g} s (all {self.max_size} in use)")
            self._cond.wait(left)

    def _after_fork(self) -> None:
        """Under the lock: in a forked child, forget the parent's connections unclosed (a
        close would end the parent's sessions: their sockets are shared)."""
        if self._pid != os.getpid():
            self._idle.clear()
            self._born.clear()
            self._size, self._pid = 0, os.getpid()

    def _new(self) -> Conn:
        """Fill the slot reserved by _take; a failure frees it and is the caller's error."""
        try:
            conn = self.connect()
        except BaseException:
            with self._cond:
                self._size -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._born[conn] = clock.monotonic()
        return conn

    def _lendable(self, conn: Conn, checked: bool) -> bool:
        if conn.closed or conn.pgconn.transaction_status != TransactionStatus.IDLE:
            return False
        if not checked and not _readable(conn.fileno()):
            return True
        try:  # the server said something (a FATAL before closing, or a notice): ask it
            conn.execute("")
        except psycopg.Error:
            return False
        return conn.pgconn.transaction_status == TransactionStatus.IDLE

    def _discard(self, conn: Conn) -> None:
        with self._cond:
            self._after_fork()
            ours = self._born.pop(conn, None) is not None
            if ours:
                self._size -= 1
                self._cond.notify()
        if ours:
            with contextlib.suppress(Exception):
                conn.close()
