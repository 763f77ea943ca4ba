"""The sd_notify protocol, without a dependency: one datagram to $NOTIFY_SOCKET per message.

`jobrun start` says READY=1 once it serves, a live STATUS= line, WATCHDOG=1 at half of
$WATCHDOG_USEC while its loops are healthy (a stuck loop stops the pings, so systemd restarts
the service), RELOADING=1 around a reload and STOPPING=1 when the drain starts.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

from .. import clock

log = logging.getLogger("jobrun.systemd")


class Notifier:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace
        self.address = addr or None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        ok = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        self.watchdog_interval = int(usec) / 2e6 if ok else None
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        if self.address is None:
            return False
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.sendto("\n".join(lines).encode(), self.address)
            return True
        except OSError as exc:
            log.debug("sd_notify to %r failed: %s", self.address, exc)
            return False

    def ready(self, status: str = "") -> None:
        self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> None:
        usec = int(clock.monotonic() * 1e6)  # CLOCK_MONOTONIC, as systemd wants
        self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def start_pings(self, healthy: Callable[[], bool], status: Callable[[], str],
                    status_every: float = 2.0) -> None:
        """WATCHDOG=1 at half the watchdog interval while `healthy()`; STATUS= as it changes."""
        if not self.enabled:
            return

        def run() -> None:
            last_status = ""
            next_status = 0.0
            step = min(self.watchdog_interval or status_every, status_every)
            while not self._stop.wait(step):
                lines = []
                if self.watchdog_interval is not None:
                    if healthy():
                        lines.append("WATCHDOG=1")
                    else:
                        log.error("a service loop looks stuck: no watchdog ping")
                if clock.monotonic() >= next_status:
                    next_status = clock.monotonic() + status_every
                    text = status()
                    if text != last_status:
                        lines.append(f"STATUS={text}")
                        last_status = text
                if lines:
                    self.notify(*lines)

        self._thread = threading.Thread(target=run, name="jobrun-sdnotify", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
