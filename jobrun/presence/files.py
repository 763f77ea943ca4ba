"""Presence beside a SQLite store: flock files (lock.py) and datagram doorbells (bell.py),
for services on the one host that shares the file."""

from __future__ import annotations

import json
import logging
from typing import Any

from .. import began, bell, lock
from .contract import Doorbell, Leadership, Liveness, Presence


class FileLiveness(Liveness):
    def __init__(self, path: str, holder: str, info: dict[str, Any] | None) -> None:
        self.holder = holder
        self._lock = lock.HolderLock(path, holder, info)

    def acquire(self) -> bool:
        return self._lock.acquire()

    def publish(self, info: dict[str, Any]) -> None:
        self._lock.info = info
        self._lock.write(json.dumps(info))

    def keep(self) -> bool:
        return self._lock.held  # a flock lives as long as this process: never lost

    def release(self) -> None:
        self._lock.release(unlink=True)


class FileLeadership(Leadership):
    def __init__(self, path: str) -> None:
        self._lock = lock.FileLock(lock.leader_path(path))

    @property
    def held(self) -> bool:
        return self._lock.held

    def acquire(self, holder: str) -> bool:
        if not self._lock.acquire():
            return False
        try:
            self._lock.write(holder)  # who leads, for readers: a courtesy
        except OSError as exc:
            logging.getLogger("jobrun.scheduler").warning(
                "could not write who leads into %s: %s", self._lock.path, exc)
        return True

    def release(self) -> None:
        self._lock.release()


class FileRinger(bell.Ringer):
    def ring_after(self, connection: Any) -> None:
        bell.ring_after_commit(connection, self)


class FilePresence(Presence):
    def __init__(self, path: str) -> None:
        self.path = path

    def liveness(self, holder: str, info: dict[str, Any] | None = None) -> Liveness:
        return FileLiveness(self.path, holder, info)

    def alive(self, holder: str) -> bool:
        return lock.holder_alive(self.path, holder)

    def holders(self) -> list[str]:
        return lock.live_holders(self.path)

    def info(self, holder: str) -> dict[str, Any]:
        return lock.holder_info(self.path, holder)

    def sweep(self, mine: str) -> None:
        for h in self.holders():
            if h != mine:
                self.alive(h)  # asking a dead holder's lock removes its file
        began.sweep(self.path, self.alive)

    def began_path(self, holder: str) -> str | None:
        return began.path_of(self.path, holder)

    def leadership(self) -> Leadership:
        return FileLeadership(self.path)

    def leader(self) -> str | None:
        return lock.current_leader(self.path)

    def bell(self, holder: str) -> Doorbell:
        return bell.Bell(self.path, holder)

    def ringer(self) -> FileRinger:
        return FileRinger(self.path)

    def wake_all(self) -> None:
        self.ringer().ring()
