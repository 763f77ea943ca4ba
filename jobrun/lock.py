"""flock-based locks beside the store: a liveness lock per service process, and leadership.

A process holds its lock for as long as it lives; the kernel drops it when the process dies
(SIGKILL included), so "can I take X's lock?" answers "is X dead?" at once, with no timeout.

A flock belongs to an open file description, which a forked child shares: a child that
outlived the service (a task's `os.fork()`, a multiprocessing 'fork' process) would keep the
dead service "alive" and its leadership taken. So every descriptor this module opens is
closed in forked children (`os.register_at_fork`; closing a copy never releases the
parent's lock) and on exec (O_CLOEXEC: `subprocess`, command tasks, the forkserver).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from typing import Any

from . import clock

# Every descriptor opened here, with the FileLock owning it (None: a short-lived probe).
# `_guard` makes "open and record" and "forget and close" atomic with respect to fork: a
# child never inherits an unrecorded descriptor, nor closes a number reused since.
_open_fds: dict[int, FileLock | None] = {}
_guard = threading.Lock()


def _open(path: str, flags: int, owner: FileLock | None = None, mode: int = 0o600) -> int:
    with _guard:
        fd = os.open(path, flags | os.O_CLOEXEC, mode)
        _open_fds[fd] = owner
    return fd


def _close(fd: int) -> None:
    with _guard:
        _open_fds.pop(fd, None)
        os.close(fd)


def _in_child() -> None:
    """After fork, in the child: drop our copies of every lock (the parent keeps its own)."""
    for fd, owner in list(_open_fds.items()):
        try:
            os.close(fd)
        except OSError:
            pass
        if owner is not None:
            owner._fd = None
    _open_fds.clear()
    if _guard.locked():  # taken by `before` (a fork that skipped it finds it free)
        _guard.release()


os.register_at_fork(before=_guard.acquire, after_in_parent=_guard.release,
                    after_in_child=_in_child)


def state_dir(store_path: str) -> str:
    """`<store>.jobrun/`: locks and liveness files of the services of one store."""
    return store_path + ".jobrun"


def holders_dir(store_path: str) -> str:
    return os.path.join(state_dir(store_path), "holders")


def new_holder_id() -> str:
    """Unique per service process, safe as a file name: `<pid>-<random>`."""
    return f"{os.getpid()}-{os.urandom(4).hex()}"  # secrets' source, without its OpenSSL


class FileLock:
    """An exclusive flock on one file, held by this object's open file description."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, blocking: bool = False) -> bool:
        if self._fd is not None:
            return True
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        fd = _open(self.path, os.O_RDWR | os.O_CREAT, self)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            _close(fd)
            return False
        except BaseException:
            _close(fd)
            raise
        self._fd = fd
        return True

    def write(self, text: str) -> None:
        """Say who holds the lock, for readers (`jobrun top`): the file's whole content."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, text.encode(), 0)

    def release(self, unlink: bool = False) -> None:
        if self._fd is None:
            return
        if unlink:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        _close(self._fd)
        self._fd = None


class HolderLock(FileLock):
    """This process's liveness lock: `holders/<holder>.lock`, held while it serves.

    The file appears already locked (created and locked under a temporary name, then
    renamed): another service sweeping the folder must never find it unlocked and judge a
    live holder dead."""

    def __init__(self, store_path: str, holder: str, info: dict[str, Any] | None = None) -> None:
        super().__init__(os.path.join(holders_dir(store_path), holder + ".lock"))
        self.holder = holder
        self.info = info or {}

    def acquire(self, blocking: bool = False) -> bool:
        if self._fd is not None:
            return True
        folder = os.path.dirname(self.path)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        tmp = os.path.join(folder, f".{self.holder}.lock.new")
        fd = _open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, self)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: cannot be taken
            os.write(fd, json.dumps({"holder": self.holder, "pid": os.getpid(),
                                     "started": clock.now(), **self.info}).encode())
            os.rename(tmp, self.path)
        except BaseException:
            _close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._fd = fd
        return True


def holder_alive(store_path: str, holder: str) -> bool:
    """Whether the service process `holder` still holds its lock.

    A missing file or a lock we can take means it is dead; we then remove its file."""
    path = os.path.join(holders_dir(store_path), holder + ".lock")
    try:
        fd = _open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _close(fd)
        return True
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    _close(fd)
    return False


def live_holders(store_path: str) -> list[str]:
    """Names of holders whose lock files exist (some may have just died)."""
    try:
        names = os.listdir(holders_dir(store_path))
    except FileNotFoundError:
        return []
    return [n[:-5] for n in names if n.endswith(".lock")]


def holder_info(store_path: str, holder: str) -> dict[str, Any]:
    """What a service wrote about itself in its lock file: pid, queues, caps, started."""
    try:
        with open(os.path.join(holders_dir(store_path), holder + ".lock"), "rb") as f:
            data = json.loads(f.read() or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def leader_path(store_path: str) -> str:
    return os.path.join(state_dir(store_path), "leader.lock")


def current_leader(store_path: str) -> str | None:
    """The holder id the scheduler's leader wrote, if its lock is still held."""
    path = leader_path(store_path)
    try:
        fd = _open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 200, 0).decode(errors="replace").strip() or "?"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        _close(fd)
