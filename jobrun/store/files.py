"""The store file itself: checks before SQLite opens it, private creation, and apsw errors
translated into StoreErrors that say what to do."""

from __future__ import annotations

import logging
import os
import stat

import apsw

from ..errors import StoreError

log = logging.getLogger("jobrun.store")
BUSY_TIMEOUT_MS = 30_000


def wrap(exc: BaseException, path: str) -> StoreError:
    """Translate an apsw error into a StoreError that says what to do."""
    if isinstance(exc, apsw.FullError):
        return StoreError(f"store {path} is full (disk or max_page_count): {exc}; free space and retry")
    if isinstance(exc, apsw.NotADBError):
        return StoreError(f"{path} is not a SQLite database (or is encrypted): refusing to touch it")
    if isinstance(exc, apsw.BusyError):
        return StoreError(f"store {path} stayed locked for {BUSY_TIMEOUT_MS // 1000}s: {exc}")
    if isinstance(exc, apsw.CantOpenError):
        return StoreError(f"cannot open store {path}: {exc}")
    return StoreError(f"store {path}: {type(exc).__name__}: {exc}")


def check_file(path: str) -> bool:
    """Whether the store exists (and is a regular file). The header is left to SQLite: opening
    and closing the file here would drop every POSIX lock this process holds on it (SQLite's
    own included), so a non-database is refused by SQLite's first read, which writes nothing."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{path} is not a regular file")
    if 0 < st.st_size < 512:  # smaller than any SQLite page; SQLite would take it as empty
        raise StoreError(f"{path} is not a SQLite database ({st.st_size} bytes): "
                         "refusing to touch it")
    return True


_warned: set[str] = set()


def warn_if_shared(path: str) -> None:
    """A store in a folder others may write to can be replaced or removed under us (and its
    -wal/-shm created by them): allowed, but said once per folder."""
    folder = os.path.dirname(path)
    try:
        mode = os.stat(folder).st_mode
    except OSError:
        return
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and folder not in _warned:
        _warned.add(folder)
        log.warning("store folder %s is writable by others (mode %o): anyone there could "
                    "replace or delete the job store; keep it in a 0700 folder",
                    folder, stat.S_IMODE(mode))


def create_private(path: str) -> None:
    """A new store is 0600 in a 0700 folder: jobs carry user data. -wal/-shm follow the file."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
    except FileExistsError:
        pass
