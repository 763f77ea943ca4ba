"""The began log's ring (jobrun/began.py): a service's threads store their starts in place,
in a memory map, and another process reads them from the file, with its children's
appended records after the ring; a ring gone round keeps the latest starts; a damaged log
is not trusted, and says so."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jobrun import began

SLOTS = began.RING // 8


def test_starts_in_the_ring_and_appended_after_it_are_read_by_another_process(
        tmp_path: Path) -> None:
    path = str(tmp_path / "h.began")
    code = ("import os, sys; from jobrun import began; p = sys.argv[1]; began.open_log(p); "
            "[began.begin(p, t) for t in (11, 12)]; began.append(p, 13); "
            "print('ok', flush=True); os.kill(os.getpid(), 9)")  # no close, no flush
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == -signal.SIGKILL and out.stdout == "ok\n", out.stderr
    assert began.read(path) == {11, 12, 13}
    assert os.path.getsize(path) == len(began.HEAD) + began.RING + 8  # the child's after


def test_a_ring_gone_round_keeps_its_latest_starts(tmp_path: Path) -> None:
    path = str(tmp_path / "h.began")
    began.open_log(path)
    try:
        for t in range(1, SLOTS + 6):
            began.begin(path, t)
        got = began.read(path)
        assert got is not None and len(got) == SLOTS
        assert min(got) == 6 and max(got) == SLOTS + 5
        began.append(path, 7_000_000)
        assert began.appended(path) == 8
        began.truncate(path)  # what was appended goes; the ring stays
        assert began.appended(path) == 0 and began.read(path) == got
    finally:
        began.close(path, unlink=True)
    assert not os.path.exists(path)


def test_a_service_holding_more_than_its_ring_keeps_appends_its_starts(
        tmp_path: Path) -> None:
    from jobrun.config import QueueConfig, Settings
    from jobrun.service import Service

    settings = Settings(store=str(tmp_path / "jobs.db"), queues={
        "big": QueueConfig(name="big", prefetch=began.RING_HOLDS + 1)})
    svc = Service(settings.store, settings)
    try:
        svc._plan(settings)
        assert svc._ring is False
        svc._plan(Settings(store=settings.store))
        assert svc._ring is True
    finally:
        svc.store.close()


@pytest.mark.parametrize("damage", ["cut", "cut-in-a-record", "emptied", "garbage", "old"])
def test_a_damaged_log_is_not_trusted_and_says_so(tmp_path: Path, damage: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Found by a stranger: a log cut short, emptied or overwritten read as a whole one, so
    held jobs that ran went back unspent. Now each held job of its service counts as begun."""
    path = str(tmp_path / "h.began")
    began.open_log(path)
    began.begin(path, 11)
    began.close(path, unlink=False)
    data = Path(path).read_bytes()
    Path(path).write_bytes({"cut": data[:10_000], "cut-in-a-record": data + b"\0" * 3,
                            "emptied": b"", "garbage": os.urandom(len(data)),
                            "old": (11).to_bytes(8, "little")}[damage])
    assert began.read(path) is None
    assert "damaged" in caplog.text and path in caplog.text
