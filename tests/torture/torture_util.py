"""Helpers shared by the torture tests (imported by name: tests/torture is on sys.path)."""

from __future__ import annotations

import json
import logging
import os
import random
import threading
from pathlib import Path
from typing import Any

import apsw

from jobrun.store import sqlite as jsqlite
from support.config import write_config as _write_config

VALID_STATES = {"scheduled", "queued", "running", "retrying", "succeeded", "dead", "cancelled"}
JSON_COLUMNS = ("args", "kwargs", "errors", "options")


def write_tasks_module(folder: Path, name: str, body: str) -> None:
    """A tasks module next to a config: the service finds it there (config folder first)."""
    (folder / f"{name}.py").write_text(
        "import os, sys, time\nimport jobrun\n\napp = jobrun.App()\n\n" + body,
        encoding="utf-8")


def write_config(folder: Path, store: str | Path, imports: list[str], *, extra: str = "",
                 concurrency: int = 4, max_attempts: int = 5) -> str:
    """A config in `folder` on `store`, polling every 100 ms, draining for 5 s at most."""
    return _write_config(folder, imports=imports, store=store, shutdown_timeout="5s",
                         jobrun=f'poll = "100ms"\n{extra}',
                         default_queue={"concurrency": concurrency,
                                        "max_attempts": max_attempts})


def plain(path: str | Path) -> apsw.Connection:
    """A connection of the test's own, default VFS, no jobrun code involved."""
    c = apsw.Connection(str(path))
    c.set_busy_timeout(30_000)
    return c


def audit_rows(conn: apsw.Connection) -> dict[int, dict[str, Any]]:
    """Every job row, checked complete: valid state, JSON columns that parse. Returns them."""
    out: dict[int, dict[str, Any]] = {}
    cols = ("id", "task", "queue", "state", "args", "kwargs", "errors", "options", "result",
            "attempts", "max_attempts", "run_at")
    for row in conn.execute(f"SELECT {', '.join(cols)} FROM jobs"):
        d = dict(zip(cols, row))
        assert d["state"] in VALID_STATES, d
        assert isinstance(d["task"], str) and d["task"], d
        for c in JSON_COLUMNS:
            d[c] = json.loads(d[c])
        if d["result"] is not None:
            d["result"] = json.loads(d["result"])
        assert isinstance(d["args"], list) and isinstance(d["kwargs"], dict), d
        out[d["id"]] = d
    return out


def integrity(conn: apsw.Connection) -> str:
    return str(conn.execute("PRAGMA integrity_check").get)


class Capture(logging.Handler):
    """Records of the jobrun loggers, thread-safe, without pytest's caplog level juggling."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock2:
            self.records.append(record)

    def text(self, level: int = logging.WARNING) -> str:
        with self._lock2:
            recs = list(self.records)
        out = []
        for r in recs:
            if r.levelno >= level:
                try:
                    out.append(r.getMessage())
                except Exception:
                    out.append(str(r.msg))
        return "\n".join(out)


# -- a faulty VFS ------------------------------------------------------------------------------
class Faults:
    """Switch and dice of the faulty VFS (one per test).

    WAL writes and syncs fail at `rate` while `on`. Store-file writes and syncs (in WAL mode
    SQLite writes the store file only in checkpoints) fail only in a thread that set
    `checkpointing` (the test's own explicit checkpoints): apsw re-raises a VFS callback's
    Python exception when control returns to Python even where SQLite treats the error as
    benign, e.g. an autocheckpoint run inside COMMIT, whose failure SQLite ignores (the
    commit stands). Faulting those would make COMMIT raise after committing, which a real
    I/O error does not do."""

    def __init__(self, seed: int, rate: float) -> None:
        self.rng = random.Random(seed)
        self.rate = rate
        self.on = False
        self.local = threading.local()
        self.calls: dict[str, int] = {}
        self.fired: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return sum(self.fired.values())

    def roll(self, kind: str, wal: bool) -> bool:
        key = f"{'wal' if wal else 'db'}-{kind}"
        with self._lock:
            self.calls[key] = self.calls.get(key, 0) + 1
            if not self.on:
                return False
            if not wal and not getattr(self.local, "checkpointing", False):
                return False
            if self.rng.random() >= self.rate:
                return False
            self.fired[key] = self.fired.get(key, 0) + 1
            return True


class FaultyFile(apsw.VFSFile):
    def __init__(self, faults: Faults, name: Any, flags: list[int]) -> None:
        self.faults = faults
        self.wal = bool(flags[0] & apsw.SQLITE_OPEN_WAL)
        self.main = bool(flags[0] & apsw.SQLITE_OPEN_MAIN_DB)
        super().__init__("", name, flags)

    def xWrite(self, data: bytes, offset: int) -> None:
        if (self.wal or self.main) and self.faults.roll("write", self.wal):
            raise apsw.IOError("injected write fault")
        super().xWrite(data, offset)

    def xSync(self, flags: int) -> None:
        if (self.wal or self.main) and self.faults.roll("sync", self.wal):
            raise apsw.IOError("injected sync fault")
        super().xSync(flags)


class FaultyVFS(apsw.VFS):
    """The default VFS, with injected SQLITE_IOERR on writes and syncs (see Faults)."""

    def __init__(self, name: str, faults: Faults) -> None:
        self.faults = faults
        super().__init__(name, base="")

    def xOpen(self, name: Any, flags: list[int]) -> apsw.VFSFile:
        return FaultyFile(self.faults, name, flags)


def checkpoint_under_faults(conn: apsw.Connection, faults: Faults, mode: str = "PASSIVE"
                            ) -> bool:
    """One explicit checkpoint whose store-file writes/syncs may fail; True if it worked."""
    faults.local.checkpointing = True
    try:
        conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
        return True
    except apsw.Error:
        return False
    finally:
        faults.local.checkpointing = False


def open_with_vfs(vfs: str) -> Any:
    """A replacement for SqliteStore._open that opens through `vfs`.

    GAP: SqliteStore has no way to choose a VFS. This mirrors its `_open` (as of schema v3)
    with `vfs=` added; the smallest change in jobrun is a `vfs: str | None = None` keyword on
    SqliteStore.__init__, kept as self.vfs and passed to apsw.Connection in _open."""
    def _open(self: jsqlite.SqliteStore) -> apsw.Connection:
        flags = apsw.SQLITE_OPEN_READONLY if self.readonly else apsw.SQLITE_OPEN_READWRITE
        try:
            conn = apsw.Connection(self.path, flags=flags | apsw.SQLITE_OPEN_URI, vfs=vfs)
            conn.set_busy_timeout(jsqlite.BUSY_TIMEOUT_MS)
            version = conn.execute("PRAGMA user_version").get
            if version > jsqlite.SCHEMA_VERSION:
                conn.close()
                raise jsqlite.StoreError(f"store {self.path} is too new")
            if not self.readonly:
                conn.execute(f"PRAGMA page_size={jsqlite.PAGE_SIZE}")
            if not self.readonly and conn.execute("PRAGMA journal_mode").get != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            sync = "FULL" if self.durability == "full" else "NORMAL"
            conn.execute(f"PRAGMA synchronous={sync}; PRAGMA temp_store=MEMORY;")
        except apsw.Error as exc:
            raise jsqlite.wrap(exc, self.path) from exc
        return conn
    return _open


def capped_open(cap: dict[str, int | None]) -> Any:
    """A wrapper of SqliteStore._open that sets `PRAGMA max_page_count` to cap["pages"] on
    every connection jobrun opens (max_page_count is per connection)."""
    orig = jsqlite.SqliteStore._open

    def _open(self: jsqlite.SqliteStore) -> apsw.Connection:
        conn = orig(self)
        pages = cap.get("pages")
        if pages:
            conn.execute(f"PRAGMA max_page_count = {int(pages)}").fetchall()
        return conn
    return _open


def sha_of(path: str | Path) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def side_files(path: str | Path) -> list[str]:
    p = str(path)
    return [s for s in ("-wal", "-shm", "-journal") if os.path.exists(p + s)]
