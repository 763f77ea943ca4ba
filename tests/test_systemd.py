"""sd_notify with a real datagram socket: READY, STATUS, WATCHDOG, RELOADING, STOPPING."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from conftest import JOBRUN
from jobrun.ops.systemd import Notifier


def _listen(tmp_path: Path) -> tuple[socket.socket, str]:
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.2)
    return s, path


def _collect(sock: socket.socket, until: str, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    got: list[str] = []
    while time.monotonic() < deadline:
        try:
            got.extend(sock.recv(4096).decode().split("\n"))
        except TimeoutError:
            continue
        if any(line.startswith(until) for line in got):
            return got
    raise AssertionError(f"no {until} in {got}")


def test_service_speaks_sd_notify(tmp_path: Path) -> None:
    sock, path = _listen(tmp_path)
    cfg = tmp_path / "jobrun.toml"
    cfg.write_text('[jobrun]\nstore = "j.db"\nshutdown_timeout = 2\n')
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "600000"}
    p = subprocess.Popen([*JOBRUN, "start", "--config", str(cfg)], env=env,
                         stderr=subprocess.DEVNULL)
    try:
        first = _collect(sock, "READY=1")
        assert any(x.startswith("STATUS=0 queued, oldest 0s, 0 running") for x in first), first
        pings = _collect(sock, "WATCHDOG=1", timeout=5)
        assert "WATCHDOG=1" in pings
        cfg.write_text('[jobrun]\nstore = "j.db"\nshutdown_timeout = 2\n'
                       '[queues.default]\nconcurrency = 3\n')
        p.send_signal(signal.SIGHUP)
        reload_msgs = _collect(sock, "RELOADING=1")
        assert any(x.startswith("MONOTONIC_USEC=") for x in reload_msgs)
        _collect(sock, "READY=1")
        p.send_signal(signal.SIGTERM)
        _collect(sock, "STOPPING=1")
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()
        sock.close()


def test_no_watchdog_ping_while_a_loop_is_stuck(tmp_path: Path) -> None:
    sock, path = _listen(tmp_path)
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
    healthy = {"ok": True}
    n.start_pings(lambda: healthy["ok"], lambda: "fine", status_every=0.1)
    try:
        assert "WATCHDOG=1" in _collect(sock, "WATCHDOG=1", timeout=3)
        healthy["ok"] = False
        time.sleep(0.3)  # let a ping already in flight arrive, then drain
        try:
            while True:
                sock.recv(4096)
        except TimeoutError:
            pass
        deadline = time.monotonic() + 0.6
        late: list[str] = []
        while time.monotonic() < deadline:
            try:
                late.append(sock.recv(4096).decode())
            except TimeoutError:
                pass
        assert not any("WATCHDOG=1" in m for m in late)
    finally:
        n.close()
        sock.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    n = Notifier({})
    assert not n.enabled and n.notify("READY=1") is False
