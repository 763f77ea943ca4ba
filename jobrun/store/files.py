"""The store file itself: checks before SQLite opens it, private creation, and apsw errors
translated into StoreErrors that say what to do."""

from __future__ import annotations

import logging
import os
import pwd
import stat
import urllib.parse

import apsw

from ..errors import StoreError
from . import busy

log = logging.getLogger("jobrun.store")
BUSY_TIMEOUT_MS = 30_000


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def folder_writable(path: str) -> bool:
    """Whether this user may create the -wal and -shm files SQLite keeps beside the store."""
    return os.access(os.path.dirname(path) or ".", os.W_OK | os.X_OK)


def immutable_uri(path: str) -> str:
    """The store read as an immutable file: no -wal/-shm, no locks (SQLite's `immutable=1`)."""
    return "file:" + urllib.parse.quote(path, safe="/") + "?immutable=1"


def readonly_fallback(path: str) -> str | None:
    """For a reader whose open failed: the immutable URI, when that reads the whole store.

    A WAL store cannot be read by a user who may not create its -shm (a 0555 folder): SQLite
    says "attempt to write a readonly database". Without a -wal file every committed
    transaction is in the main file (the last connection checkpointed and removed it), so
    reading it as immutable reads everything. With a -wal, committed jobs may live only in
    it, which immutable would skip: no fallback then (wrap says why). A service starting
    while we read could checkpoint under us; the reader only reads, so the worst is an error
    or a stale row in that one listing, never a damaged store."""
    if folder_writable(path) or os.path.lexists(path + "-wal"):
        return None
    return immutable_uri(path)


def wrap(exc: BaseException, path: str, *, reading: bool = False,
         conn: apsw.Connection | None = None) -> StoreError:
    """Translate an apsw error into a StoreError that says what to do; `conn`, the
    connection that failed, tells a busy that waited from one that did not."""
    if isinstance(exc, (apsw.ReadOnlyError, apsw.CantOpenError)) and not folder_writable(path):
        folder = os.path.dirname(path)
        if reading:
            return StoreError(
                f"cannot read store {path} as {_user()}: its folder {folder} is not writable "
                f"and {os.path.basename(path)}-wal exists (a service has the store open, or "
                "stopped without a checkpoint), so SQLite must write the -shm file beside it; "
                "run as the store's owner or make the folder writable by this user")
        return StoreError(
            f"store {path}: the folder {folder} must be writable by this user ({_user()}) "
            f"for the -wal and -shm files SQLite keeps beside the store ({exc})")
    if isinstance(exc, apsw.ReadOnlyError) and not reading and not os.access(path, os.W_OK):
        return StoreError(f"store {path} is not writable by this user ({_user()}): {exc}")
    if isinstance(exc, apsw.FullError):
        return StoreError(f"store {path} is full (disk or max_page_count): {exc}; free space and retry")
    if isinstance(exc, apsw.NotADBError):
        return StoreError(f"{path} is not a SQLite database (or is encrypted): refusing to touch it")
    if isinstance(exc, apsw.BusyError):
        return StoreError(_busy(path, exc, busy.why(conn)))
    if isinstance(exc, apsw.CantOpenError):
        return StoreError(f"cannot open store {path}: {exc}")
    return StoreError(f"store {path}: {type(exc).__name__}: {exc}")


def _busy(path: str, exc: apsw.BusyError, why: str | None) -> str:
    """Only a plain or timed-out SQLITE_BUSY can mean the busy timeout ran out, and only
    when the handler says it did; the other kinds come back at once (a deadlock of two
    readers that both want to write, a snapshot that went stale, a recovery): say which."""
    code = getattr(exc, "extendedresult", None)
    kind = apsw.mapping_extended_result_codes.get(code, "") if code is not None else ""
    if kind not in ("", "SQLITE_BUSY_TIMEOUT") and code != apsw.SQLITE_BUSY:
        return f"store {path} was busy ({kind}, without waiting): {exc}"
    seconds = BUSY_TIMEOUT_MS // 1000
    if why in (busy.RAN_OUT, None):  # None: the caller named no connection
        return f"store {path} stayed locked for {seconds}s: {exc}"
    if why == busy.RETRIED:
        return (f"store {path}: setting it up failed busy at once for {seconds}s, tried again "
                f"all along: other connections kept holding read locks while wanting to "
                f"write (rollback-journal mode, before the store is WAL): {exc}")
    if why == busy.AT_ONCE:
        return (f"store {path} was busy at once, without waiting: this connection held a "
                f"read lock and wanted to write while another one did too (a deadlock "
                f"SQLite breaks at once in rollback-journal mode): {exc}; try again")
    return (f"store {path} is locked on the connection= given (its own busy timeout, if any, "
            f"ran out, or its transaction read before writing while another connection "
            f"did too: start it with BEGIN IMMEDIATE): {exc}")


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


def in_caller(connection: object, path: str) -> apsw.Connection:
    """The caller's apsw connection (connection=), refused unless a transaction is open on it
    and its main database is the store file itself: jobs written into another file would be
    lost to this store's services. A refusal writes nothing."""
    if not isinstance(connection, apsw.Connection):
        raise StoreError("connection= must be an apsw connection on a SQLite store")
    if not connection.in_transaction:
        raise StoreError("connection= must be inside an open transaction (BEGIN ...)")
    theirs = connection.filename
    if not theirs or os.path.realpath(theirs) != os.path.realpath(path):
        raise StoreError(f"connection= is open on {theirs or 'an in-memory database'!r}, not "
                         f"the store {path}: nothing was written; use a connection to the "
                         f"store file itself")
    return connection
