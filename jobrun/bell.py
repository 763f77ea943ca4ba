"""The doorbell: wake idle services at once when a job is enqueued, from any process.

Each service binds a datagram socket named after its holder id (Linux abstract namespace:
no file, no cleanup). A producer, after its commit, sends one byte to each live service.
A bell lost (full buffer, another platform) only costs the slow fallback poll.
A forked child closes its copies of every bell (a task's fork must not keep a dead
service's address bound); exec closes them anyway (sockets are created close-on-exec).
"""

from __future__ import annotations

import os
import select
import socket
import sys
import threading
import weakref
from typing import Any

from .lock import holders_dir

try:  # the builtin sha1: hashlib's would load OpenSSL, 3.5 MB resident for one hash of a path
    from _sha1 import sha1  # type: ignore[import-not-found]
except ImportError:  # a Python built without the builtin hashes
    from hashlib import sha1

_bells: weakref.WeakSet[Bell] = weakref.WeakSet()

ABSTRACT = sys.platform.startswith("linux")


def _address(store_path: str, holder: str) -> str:
    tag = sha1(store_path.encode()).hexdigest()[:16]
    return f"\0jobrun-{tag}-{holder}"


class Bell:
    """A service's side: something to wait on, woken by producers and by its own threads."""

    def __init__(self, store_path: str, holder: str) -> None:
        self._r, self._w = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._r.setblocking(False)
        self._w.setblocking(False)
        self._sock: socket.socket | None = None
        if ABSTRACT:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.bind(_address(store_path, holder))
            s.setblocking(False)
            self._sock = s
        self._fds = [self._r] + ([self._sock] if self._sock else [])
        _bells.add(self)

    def wake(self) -> None:
        """From a thread of this process."""
        try:
            self._w.send(b"w")
        except (BlockingIOError, OSError):
            pass  # already woken

    def wait(self, timeout: float) -> bool:
        """Sleep until woken or `timeout`. Returns whether a producer rang (new work may be
        anywhere), as opposed to a wake from this process's own threads."""
        if timeout > 0:
            ready, _, _ = select.select(self._fds, [], [], timeout)
        else:
            ready = self._fds
        rung = False
        for s in ready:
            try:
                while True:
                    s.recv(64)
                    rung = rung or s is self._sock
            except (BlockingIOError, OSError):
                pass
        return rung

    def close(self) -> None:
        for s in (self._r, self._w, self._sock):
            if s is not None:
                s.close()


def _close_bells_in_child() -> None:
    for bell in list(_bells):
        bell.close()


os.register_at_fork(after_in_child=_close_bells_in_child)


class Ringer:
    """A producer's side: rings every live service of one store, after a commit."""

    def __init__(self, store_path: str) -> None:
        self.store_path = store_path
        self._dir = holders_dir(store_path)
        self._mtime = -1.0
        self._addrs: list[str] = []
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None

    def _refresh(self) -> list[str]:
        try:
            mtime = os.stat(self._dir).st_mtime
        except FileNotFoundError:
            return []
        if mtime != self._mtime:
            try:
                names = os.listdir(self._dir)
            except OSError:  # gone, or another user's 0700 folder: the services' poll covers it
                names = []
            self._addrs = [_address(self.store_path, n[:-5]) for n in names if n.endswith(".lock")]
            self._mtime = mtime
        return self._addrs

    def ring(self) -> None:
        if not ABSTRACT:
            return
        with self._lock:
            addrs = self._refresh()
            if not addrs:
                return
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            for a in addrs:
                try:
                    self._sock.sendto(b"e", a)
                except OSError:
                    pass  # dead service, or buffer full: the poll covers it


class _Armed:
    """Per caller connection: ring once its transaction commits; a rollback rings nobody."""

    def __init__(self, ringer: Ringer) -> None:
        self.ringer = ringer
        self.armed = False

    def on_commit(self) -> bool:
        if self.armed:
            self.armed = False
            # The hook runs just before the commit lands: ring from a thread a moment later.
            t = threading.Timer(0.002, self.ringer.ring)
            t.daemon = True
            t.start()
        return False  # never veto the commit

    def on_rollback(self) -> None:
        self.armed = False


def ring_after_commit(connection: Any, ringer: Ringer) -> None:
    """Ring every live service once the caller's transaction on `connection` commits (a
    rollback rings nobody). Hooks on this connection, every time (the same id replaces the
    last ones): a cache keyed by id() would find a closed connection's entry for a new one
    and ring nobody."""
    a = _Armed(ringer)
    connection.set_commit_hook(a.on_commit, id="jobrun-bell")
    connection.set_rollback_hook(a.on_rollback, id="jobrun-bell")
    a.armed = True
