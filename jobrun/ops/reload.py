"""Hot reload of jobrun.toml: watched by polling its stat, and on SIGHUP.

A valid edit is applied at once and atomically (cron entries, queue concurrency, new
queues, new task modules); jobs in flight are untouched. An invalid edit is refused with one
log line naming the problem, and the running config stays in force.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

from ..config import Settings, check
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..service import Service
    from .systemd import Notifier

log = logging.getLogger("jobrun.reload")

# How often the watcher looks at the file. A stat per look costs nothing measurable, and a
# poll needs no watchfiles: that, its anyio and its multiprocessing were a third of an idle
# service's memory. An edit is applied once its stat has held still for one look.
POLL = 0.2


def load_valid(path: str, current: Settings) -> Settings:
    """The new settings, or ConfigError with the first problem (file, line, key, reason)."""
    from ..runtime import check_tasks, import_tasks

    try:
        if os.path.getsize(path) == 0:
            raise ConfigError("the file is empty (still being written?)", file=path)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=path) from exc
    settings, problems = check(path)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{problems[0]}{more}")
    import_tasks(settings)
    problems = check_tasks(settings)
    if problems:
        raise problems[0]
    if settings.store and current.store and \
            os.path.realpath(settings.store) != os.path.realpath(current.store):
        raise ConfigError(f"store changed to {settings.store}: restart jobrun to move stores",
                          file=path, key="jobrun.store")
    return settings


def _content(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()  # a config is small: the content itself, no hash (no OpenSSL)
    except OSError:
        return None


def _stat(path: str) -> tuple[int, ...] | None:
    """What changes when the file (or what its symlinks lead to) is written or replaced."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Reloader:
    """Watches one config file and applies its valid edits to a running service."""

    def __init__(self, service: Service, path: str, notifier: Notifier | None = None) -> None:
        self.service = service
        self.notifier = notifier
        self.path = os.path.abspath(path)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.applied = 0
        self.refused = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="jobrun-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def reload(self, reason: str = "changed") -> bool:
        """Read the file again and apply it if valid; False (and one log line) if not."""
        with self._lock:
            try:
                settings = load_valid(self.path, self.service.settings)
            except ConfigError as exc:
                self.refused += 1
                log.error("config reload refused, keeping the running config: %s", exc)
                return False
            if settings == self.service.settings:
                return True
            if self.notifier is not None:
                self.notifier.reloading()
            self.service.apply(settings)
            if self.notifier is not None:
                self.notifier.ready(self.service.status_line())
            self.applied += 1
            log.info("config reloaded (%s): %s", reason, self.path)
            return True

    def _watch(self) -> None:
        # Content decides, not events: editors replace the file by a rename, Kubernetes
        # swaps a symlink (`..data`), and a touch that changes nothing reloads nothing.
        last, seen = _content(self.path), _stat(self.path)
        try:
            while not self._stop.wait(POLL):
                now = _stat(self.path)
                if now == seen:
                    continue
                seen = now
                if self._stop.wait(POLL) or _stat(self.path) != now:
                    continue  # still being written: look again
                content = _content(self.path)
                if content is not None and content != last:
                    last = content
                    self.reload("file changed")
        except Exception:  # a watcher that dies must not take the service with it
            log.exception("config watcher stopped; SIGHUP still reloads")
