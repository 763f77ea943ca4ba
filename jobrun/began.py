"""Which held jobs a service began, in a log beside a SQLite store that outlives the
service's process: 8 bytes (a token, no sync) written before each held job runs, by the
thread or child that runs it, and read by whoever rescues the service after its death. A
held job whose token is not in the log never began: it goes back to queued as it was, its
attempt not spent. One that is in it, or any held job of a service whose log is missing or
older than this boot (lines may have gone with the power), counts as begun: WorkerLost, the
attempt counted, as a running job.

The service's own threads write into a ring at the head of the file, mapped in memory: a
store to the page cache, no system call (a write() per job gave the GIL away before every
held job: bench_io, 17 us a job). Its process children append after the ring (O_APPEND:
whole records, any process). Zeros are no token; a token the ring has gone round over
belonged to an attempt long recorded (the ring holds far more than a service holds ahead).
"""

from __future__ import annotations

import itertools
import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .lock import holders_dir

if TYPE_CHECKING:  # mapped at a service's first held start: an idle one loads no mmap
    import mmap

log = logging.getLogger("jobrun.service")

_TOKEN = struct.Struct("<q")
HEAD = b"jobrun began v1\n"  # a log without it, or cut short, is damaged: not trusted
RING = 1 << 20  # bytes at the head of a service's log: its threads' 131,072 latest starts
#: The most a service holds ahead in all, for its ring: past it, its threads append too.
RING_HOLDS = RING // _TOKEN.size // 4
_LOG = len(HEAD) + RING  # what its service writes: children append after it
_fds: dict[str, int] = {}  # per process (a child opens its own)
_ringed: set[str] = set()  # logs with a ring, opened by their service (this process)
_rings: dict[str, tuple[mmap.mmap, Callable[[], int]]] = {}  # their maps, once made
_mapping = threading.Lock()


def _in_child() -> None:
    """A forked child (a task's os.fork) keeps no copy of its service's log open."""
    for m, _ in _rings.values():
        try:
            m.close()
        except (OSError, BufferError):
            pass
    _rings.clear()
    _ringed.clear()
    for fd in _fds.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _fds.clear()


os.register_at_fork(after_in_child=_in_child)


def path_of(store_path: str, holder: str) -> str:
    return os.path.join(holders_dir(store_path), holder + ".began")


def open_log(path: str) -> None:
    """Made when its service starts, its ring zeros (a sparse file: pages are written as
    the ring reaches them): a log there and written since this boot is whole, empty or not
    (no log: nothing can be told)."""
    if path in _ringed:
        return
    fd = _open(path)
    os.ftruncate(fd, 0)
    os.write(fd, HEAD)
    os.ftruncate(fd, _LOG)
    _ringed.add(path)


def _ring(path: str) -> tuple[mmap.mmap, Callable[[], int]] | None:
    """The ring's map, made at the first held start (an idle service maps nothing)."""
    with _mapping:
        ring = _rings.get(path)
        if ring is None and path in _ringed:
            import mmap

            ring = _rings[path] = (mmap.mmap(_fds[path], _LOG, mmap.MAP_SHARED),
                                   itertools.count().__next__)
        return ring


def _open(path: str) -> int:
    fd = _fds.get(path)
    if fd is None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        _fds[path] = fd
    return fd


def begin(path: str, token: int) -> None:
    """A thread of the service that opened the log: the held job of `token` begins (its
    record stored in the ring, in place; atomic under the GIL)."""
    ring = _rings.get(path) or _ring(path)
    if ring is None:
        append(path, token)
        return
    m, step = ring
    at = len(HEAD) + step() % (RING // _TOKEN.size) * _TOKEN.size
    try:
        m[at:at + _TOKEN.size] = _TOKEN.pack(token)
    except ValueError:  # closed meanwhile (the service stopping): the file takes it
        append(path, token)


def append(path: str, token: int) -> None:
    """Say that the held job of `token` begins (O_APPEND: whole records, any process)."""
    os.write(_fds.get(path) or _open(path), _TOKEN.pack(token))


def size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def appended(path: str) -> int:
    """Bytes appended after the ring (its children's records)."""
    return max(0, size(path) - (_LOG if path in _ringed else 0))


def truncate(path: str) -> None:
    """What was appended, dropped by its service when no held job of it is in flight (none
    can be written meanwhile)."""
    fd = _fds.get(path)
    if fd is not None:
        os.ftruncate(fd, _LOG if path in _ringed else 0)


def close(path: str, *, unlink: bool) -> None:
    with _mapping:
        _ringed.discard(path)
        ring = _rings.pop(path, None)
    if ring is not None:
        ring[0].close()
    fd = _fds.pop(path, None)
    if fd is not None:
        os.close(fd)
    if unlink:
        forget(path)


def forget(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def read(path: str) -> frozenset[int] | None:
    """The tokens begun; None when it cannot be trusted to be whole (no log, none written
    since this boot, or a damaged one: not begun with HEAD, shorter than its ring, cut in a
    record; said in the log)."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_mtime < _boot_time():
                return None
            data = f.read()
    except FileNotFoundError:
        return None
    if not data.startswith(HEAD) or len(data) < _LOG or (len(data) - _LOG) % _TOKEN.size:
        log.warning("began log %s is damaged (%d bytes%s): every held job of its service "
                    "counts as begun", path, len(data),
                    "" if data.startswith(HEAD) else ", not a began log")
        return None
    return frozenset(t for (t,) in _TOKEN.iter_unpack(data[len(HEAD):])) - {0}


def sweep(store_path: str, alive: Callable[[str], bool], age: float = 60.0) -> None:
    """Logs of dead holders that no rescue read (they died holding nothing), once old."""
    folder = holders_dir(store_path)
    try:
        names = [n for n in os.listdir(folder) if n.endswith(".began")]
    except FileNotFoundError:
        return
    for n in names:
        p = os.path.join(folder, n)
        try:
            old = os.stat(p).st_mtime < time.time() - age
        except FileNotFoundError:
            continue
        if old and not alive(n[:-len(".began")]):
            forget(p)


def _boot_time() -> float:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return float("inf")  # unknown: trust no log
