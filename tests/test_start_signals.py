"""A stop while `jobrun start` is still importing: drained and exit 0, never killed (143).

A service manager that stops a service it just started (a deploy that changes its mind, a
failed health check) sends SIGTERM in the first tenth of a second, while the command is
still importing the service. From its first line the command keeps such a signal for the
service's own handlers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import JOBRUN
from jobrun.cli.out import held_signals, hold_signals


def _catches(pid: int, signum: int) -> bool:
    """Whether the process has a handler for `signum` (its /proc status SigCgt mask)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(mask >> (signum - 1) & 1)


def test_held_signals_are_kept_once_each_in_order() -> None:
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        hold_signals()
        for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGTERM):
            os.kill(os.getpid(), s)
        assert held_signals() == [signal.SIGHUP, signal.SIGTERM]
        assert held_signals() == []
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def test_sigterm_as_soon_as_start_catches_it_drains_and_exits_zero(tmp_path: Path) -> None:
    for _ in range(3):
        proc = subprocess.Popen([*JOBRUN, "start", "--store", str(tmp_path / "s.db")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not _catches(proc.pid, signal.SIGTERM) and proc.poll() is None:
            assert time.monotonic() < deadline, "jobrun start never caught SIGTERM"
            time.sleep(0.0005)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, (proc.returncode, err[-2000:])
