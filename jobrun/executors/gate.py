"""The gate a process child and its slot share over the jobs of a batch: a job of it is
either started by the child or taken back by the slot (for another child), never both. A
small file, locked with lockf around each look: no semaphore for the resource tracker to
warn about at exit, and nothing left once both ends have opened it (the child unlinks it).
"""

from __future__ import annotations

import fcntl
import os
import struct
import tempfile

_STATE = struct.Struct("<qqq")  # the last seq started, and the seqs taken back (from, to)


class Gate:
    def __init__(self, path: str | None = None) -> None:
        if path is None:
            folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
            fd, path = tempfile.mkstemp(prefix="jobrun-gate-", dir=folder)
            os.write(fd, _STATE.pack(0, 1, 0))
            self.owner = True
        else:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            self.owner = False
        self.path, self._fd = path, fd

    def _swap(self, change: object) -> bool:
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            started, lo, hi = _STATE.unpack(os.pread(self._fd, _STATE.size, 0))
            new = change(started, lo, hi)  # type: ignore[operator]
            if new is None:
                return False
            os.pwrite(self._fd, _STATE.pack(*new), 0)
            return True
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def may_start(self, seq: int) -> bool:
        """In the child, before a job: False if the slot took it back."""
        return self._swap(lambda s, lo, hi: None if lo <= seq <= hi else (seq, lo, hi))

    def take_back(self, first: int, last: int) -> bool:
        """In the slot: take back the jobs of seqs first..last, unless the child started
        the first of them already (its result is on the way)."""
        return self._swap(lambda s, lo, hi: None if s >= first else (s, first, last))

    def unlink(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def close(self) -> None:
        if self.owner:
            self.unlink()
        try:
            os.close(self._fd)
        except OSError:
            pass
