"""A crash VFS: what a disk holds after the power fails, as SQLite's own crash tests model it
(test6.c, `sqlite3_simulate_device`).

Every write goes through to the real file (so SQLite reads back what it wrote), and the VFS
also keeps, per file (store, -wal, -journal; the -shm is memory and is rebuilt), the bytes
known durable (the content as of its last `xSync`) and the writes and truncations made
since. Each write, truncation, sync and delete is one numbered event. At event `crash_at`
(or when `power_fail()` is called) the power fails: every thread that touches the VFS
blocks, each file is rebuilt from its synced content plus a random choice of its unsynced
writes, some torn at 512-byte sector boundaries, a few garbled, the -shm files are removed,
and `on_crash` runs (the workload process ends there, with `os._exit`).

The model honours what SQLite's unix VFS promises it (SQLITE_IOCAP_POWERSAFE_OVERWRITE):
a write may be lost, applied, torn or garbled, but bytes outside what was written are never
touched. Not modelled: directory entries (a created file exists, a deleted one is gone, at
once), and writes lost after an `xSync` returned (a disk lying about syncs is one whose
durability nobody can test from above).

It also writes a log, one line per event that matters to a checker, in the order they
happened: the workload's own acknowledgements (`note`) and every completed sync (`S wal N`),
so a checker knows which acknowledgements came before a sync of the WAL.

`crash()` runs a workload in a forked process with this VFS as the process's default (every
connection goes through it: jobrun's, once()'s, the scheduler's) and hands back that log.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw

SECTOR = 512
TRACKED = apsw.SQLITE_OPEN_MAIN_DB | apsw.SQLITE_OPEN_WAL | apsw.SQLITE_OPEN_MAIN_JOURNAL


@dataclass
class FileState:
    """One file as the disk knows it: `synced` survives a power loss; `pending` may not."""

    kind: str
    synced: bytearray
    pending: list[tuple[int, bytes | None]] = field(default_factory=list)  # (offset, data);
    # data None: a truncation to `offset` bytes


class Disk:
    """The shared state of the crash VFS in one process (all connections, all threads)."""

    def __init__(self, seed: int, log_path: str, crash_at: int | None = None,
                 on_crash: Callable[[], None] | None = None) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self.files: dict[str, FileState] = {}
        self.events = 0
        self.crash_at = crash_at
        self.on_crash = on_crash or (lambda: os._exit(CRASHED))
        self.crashed = False
        self.fates: dict[str, int] = {}
        self._log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    # -- the log ---------------------------------------------------------------------------
    def note(self, line: str) -> None:
        """An acknowledgement, in order with the syncs (unbuffered: it outlives os._exit)."""
        with self.lock:
            self._write(line)

    def _write(self, line: str) -> None:
        os.write(self._log, (line + "\n").encode())

    # -- events ----------------------------------------------------------------------------
    def state(self, path: str, kind: str) -> FileState:
        st = self.files.get(path)
        if st is None:
            try:
                with open(path, "rb") as f:
                    data = bytearray(f.read())  # what was there before us is durable
            except FileNotFoundError:
                data = bytearray()
            st = self.files[path] = FileState(kind, data)
        return st

    def event(self) -> None:
        """Count one event; the power fails at `crash_at`. Called with the lock held."""
        if self.crashed:
            raise apsw.IOError("the power is off")
        self.events += 1
        if self.crash_at is not None and self.events >= self.crash_at:
            self.power_fail()

    def synced(self, path: str) -> None:
        st = self.files[path]
        for off, data in st.pending:
            _apply(st.synced, off, data)
        st.pending.clear()
        self._write(f"S {st.kind} {self.events}")

    def deleted(self, path: str) -> None:
        self.files.pop(path, None)

    # -- the power failure -----------------------------------------------------------------
    def power_fail(self) -> None:
        """Rebuild every file as the disk may hold it now, then end (on_crash)."""
        with self.lock:
            self.crashed = True
            for path, st in self.files.items():
                data = self._survivor(st)
                # A new file put in place: threads still reading (outside the lock) go on
                # reading the old one instead of a half-rebuilt one.
                with open(path + ".rebuilt", "wb") as f:
                    f.write(data)
                os.replace(path + ".rebuilt", path)
                if st.kind == "db":
                    try:
                        os.unlink(path + "-shm")
                    except FileNotFoundError:
                        pass
            self._write(f"X {self.events} " + " ".join(f"{k}={v}" for k, v in
                                                         sorted(self.fates.items())))
            self.on_crash()

    def _survivor(self, st: FileState) -> bytes:
        """The synced content plus a random choice of the unsynced writes, in their order.

        Either a prefix of them reached the disk (the one after it torn), or each write
        independently was lost, applied, torn (some of its sectors) or garbled (some of its
        sectors random bytes), as test6.c does."""
        data = bytearray(st.synced)
        ops = st.pending
        prefix = self.rng.random() < 0.5
        cut = self.rng.randint(0, len(ops)) if prefix else -1
        for i, (off, new) in enumerate(ops):
            if prefix:
                fate = "applied" if i < cut else "torn" if i == cut else "lost"
            else:
                r = self.rng.random()
                fate = ("lost" if r < 0.35 else "applied" if r < 0.75 else
                        "torn" if r < 0.95 else "garbled")
            if new is None:  # a truncation is applied or lost, whole
                fate = "applied" if fate in ("applied", "torn") else "lost"
            self.fates[fate] = self.fates.get(fate, 0) + 1
            if fate == "applied":
                _apply(data, off, new)
            elif fate in ("torn", "garbled") and new is not None:
                for start, piece in _sectors(off, new):
                    if self.rng.random() < 0.5:
                        continue
                    if fate == "garbled":
                        piece = self.rng.randbytes(len(piece))
                    _apply(data, start, piece)
        return bytes(data)


CRASHED = 77  # exit status of a workload process whose power failed


def _apply(data: bytearray, off: int, new: bytes | None) -> None:
    if new is None:
        del data[off:]
        return
    if len(data) < off:
        data.extend(b"\0" * (off - len(data)))
    data[off:off + len(new)] = new


def _sectors(off: int, data: bytes) -> list[tuple[int, bytes]]:
    """A write cut at the 512-byte sector boundaries of the file."""
    out = []
    pos = off
    end = off + len(data)
    while pos < end:
        nxt = min(end, (pos // SECTOR + 1) * SECTOR)
        out.append((pos, data[pos - off:nxt - off]))
        pos = nxt
    return out


def _path_of(name: Any) -> str | None:
    if name is None:
        return None
    text = name.filename() if isinstance(name, apsw.URIFilename) else str(name)
    return os.path.realpath(text)


class CrashFile(apsw.VFSFile):
    def __init__(self, disk: Disk, base: str, name: Any, flags: list[int]) -> None:
        self.disk = disk
        path = _path_of(name)
        kind = ("db" if flags[0] & apsw.SQLITE_OPEN_MAIN_DB else
                "wal" if flags[0] & apsw.SQLITE_OPEN_WAL else "journal")
        self.path = path if path is not None and flags[0] & TRACKED else None
        super().__init__(base, name, flags)
        if self.path is not None:
            with disk.lock:
                disk.state(self.path, kind)

    def xWrite(self, data: bytes, offset: int) -> None:
        if self.path is None:
            return super().xWrite(data, offset)
        with self.disk.lock:
            self.disk.event()
            self.disk.state(self.path, "?").pending.append((offset, bytes(data)))
            super().xWrite(data, offset)

    def xTruncate(self, newsize: int) -> None:
        if self.path is None:
            return super().xTruncate(newsize)
        with self.disk.lock:
            self.disk.event()
            self.disk.state(self.path, "?").pending.append((newsize, None))
            super().xTruncate(newsize)

    def xSync(self, flags: int) -> None:
        if self.path is None:
            return super().xSync(flags)
        with self.disk.lock:
            self.disk.event()
            super().xSync(flags)
            self.disk.synced(self.path)


class CrashVFS(apsw.VFS):
    """The default VFS with a Disk watching; `makedefault` so that every connection of the
    process (jobrun's own, once()'s, the scheduler's) goes through it."""

    def __init__(self, name: str, disk: Disk, makedefault: bool = True) -> None:
        self.disk = disk
        self.base = apsw.vfs_names()[0]  # the default until this one registers
        super().__init__(name, base=self.base, makedefault=makedefault)

    def xOpen(self, name: Any, flags: list[int]) -> apsw.VFSFile:
        return CrashFile(self.disk, self.base, name, flags)

    def xSleep(self, microseconds: int) -> int:
        """The busy handler's sleep, without the GIL (the inherited one keeps it, so a thread
        waiting for the write lock would stall the thread holding it in this Python VFS)."""
        time.sleep(microseconds / 1e6)
        return microseconds

    def xDelete(self, filename: str, syncdir: bool) -> None:
        path = _path_of(filename)
        with self.disk.lock:
            self.disk.event()
            super().xDelete(filename, syncdir)
            if path is not None:
                self.disk.deleted(path)


# -- the workload process ------------------------------------------------------------------------
@dataclass
class Work:
    """What a workload gets in the crashing process."""

    path: str
    durability: str
    note: Callable[[str], None]
    rng: random.Random

    def payload(self, tag: str) -> list[str]:
        return [tag, "x\u00e9\u4e2d" * self.rng.choice((0, 5, 300, 1500))]


@dataclass
class Run:
    """What the parent learns of a workload process whose power failed."""

    lines: list[list[str]]   # the VFS log: acknowledgements and syncs, in order
    ended: bool              # the workload finished (the power failed idle)
    events: int              # writes, syncs, deletes counted before the loss
    fates: str
    checked: int = 0         # acknowledgements a checker asked for

    def acks(self, kind: str, durability: str) -> list[list[str]]:
        """The acknowledgements of `kind` that must have survived the loss."""
        upto = len(self.lines)
        if durability == "normal":  # only what a sync of the WAL covered
            walsyncs = [i for i, ln in enumerate(self.lines) if ln[:2] == ["S", "wal"]]
            upto = walsyncs[-1] if walsyncs else 0
        must = [ln[1:] for ln in self.lines[:upto] if ln[0] == kind]
        self.checked += len(must)
        return must

    def all(self, kind: str) -> list[list[str]]:
        return [ln[1:] for ln in self.lines if ln[0] == kind]


def crash(tmp: Path, workload: Callable[[Work], None], path: str, durability: str, seed: int,
          crash_at: int | None) -> Run:
    """Run `workload` in a forked process on the crash VFS; the power fails at event
    `crash_at` (None: after the workload's end)."""
    log, err = tmp / "vfs.log", tmp / "child.err"
    for p in (log, err):
        p.unlink(missing_ok=True)
    pid = os.fork()
    if pid == 0:  # the machine that loses power
        disk = Disk(seed, str(log), crash_at)
        try:
            vfs = CrashVFS(f"crash-{os.getpid()}", disk)  # noqa: F841 - kept registered
            workload(Work(path, durability, disk.note, random.Random(seed)))
            disk.note("END")
            disk.power_fail()
        except BaseException:
            with disk.lock:  # unless the power is failing in another thread (it then exits)
                err.write_text(traceback.format_exc())
                os._exit(1)
        os._exit(1)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the workload process hung")
        time.sleep(0.005)
    code = os.waitstatus_to_exitcode(status)
    if code != CRASHED:
        raise AssertionError(f"workload failed (exit {code}):\n"
                             f"{err.read_text() if err.exists() else ''}")
    lines = [ln.split(" ") for ln in log.read_text().splitlines()]
    x = lines[-1]
    assert x[0] == "X", lines[-3:]
    return Run(lines[:-1], ["END"] in lines, int(x[1]), " ".join(x[2:]))
