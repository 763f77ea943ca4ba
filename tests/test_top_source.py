"""How `jobrun top` opens its store and notices what became of it: a 0-byte file is one line,
a replaced file is read afresh, a removed or truncated one is said; and no operator command
migrates a store that a live service of an older jobrun serves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import run_cli
from jobrun import clock
from jobrun.errors import StoreError
from jobrun.presence import presence_for
from jobrun.presence.upgrade import held_back
from jobrun.store.migrations import SCHEMA_VERSION
from jobrun.store.sqlite import SqliteStore
from jobrun.tui.snapshot import take
from jobrun.tui.source import open_reader, open_writer
from jobrun.tui.window import Window
from store.test_contract import job


def _store_with(path: Path, queue: str) -> None:
    s = SqliteStore(str(path))
    s.enqueue([job(queue=queue)], now=clock.now())
    s.close()


def test_a_zero_byte_store_is_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "jobs.db"
    empty.write_bytes(b"")
    r = run_cli("top", "--once", "--store", str(empty))
    assert r.returncode == 1, r.stdout
    assert r.stderr.count("\n") == 1 and "empty file (0 bytes)" in r.stderr, r.stderr
    assert "SQLError" not in r.stderr and "no such table" not in r.stderr
    assert empty.read_bytes() == b""  # looked at, not set up


def test_a_replaced_store_is_read_afresh(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    _store_with(path, "old")
    reader, window = open_reader(str(path)), Window()
    try:
        assert [q.name for q in take(reader, now=clock.now(), window=window).queues] == ["old"]
        os.rename(path, tmp_path / "moved.db")
        for side in ("-wal", "-shm"):
            if os.path.exists(str(path) + side):
                os.rename(str(path) + side, str(tmp_path / "moved.db") + side)
        _store_with(path, "new")
        assert [q.name for q in take(reader, now=clock.now(), window=window).queues] == ["new"]
    finally:
        reader.close()


@pytest.mark.parametrize("how", ["removed", "truncated"])
def test_a_removed_or_truncated_store_is_said(tmp_path: Path, how: str) -> None:
    path = tmp_path / "jobs.db"
    _store_with(path, "q")
    reader, window = open_reader(str(path)), Window()
    try:
        take(reader, now=clock.now(), window=window)
        if how == "removed":
            os.remove(path)
        else:
            os.truncate(path, 0)
        with pytest.raises(StoreError, match=how):
            take(reader, now=clock.now(), window=window)
    finally:
        reader.close()


def _older(path: Path) -> None:
    """A store that says it is one schema version behind (as an older jobrun leaves it)."""
    s = SqliteStore(str(path))
    s.enqueue([job()], now=clock.now())
    s.connection().execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    s.close()


def test_no_operator_command_migrates_under_an_older_service(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    _older(path)
    reader = SqliteStore(str(path), readonly=True)
    assert held_back(reader) is None  # nobody serves it: the first writer may migrate it
    live = presence_for(reader).liveness("old-service")
    assert live.acquire()
    try:
        reason = held_back(reader)
        assert reason and f"schema v{SCHEMA_VERSION - 1}" in reason and "old-service" in reason
        r = run_cli("retry", "1", "--store", str(path))
        assert r.returncode == 1 and "read-only until its service upgrades it" in r.stderr, \
            r.stderr
        with pytest.raises(StoreError, match="read-only until its service upgrades it"):
            open_writer(str(path))
        r = run_cli("ls", "--store", str(path))  # a read still works
        assert r.returncode == 0, r.stderr
        assert reader.schema() == (SCHEMA_VERSION - 1, SCHEMA_VERSION)  # left as it was
    finally:
        live.release()
        reader.close()


def test_a_dead_holders_job_is_marked_and_the_live_cap_shown(tmp_path: Path) -> None:
    """After the only service is SIGKILLed its job is still `running` until rescued: the
    frame says its holder is dead; the queue's cap is the live one, not the config's."""
    from io import StringIO

    from rich.console import Console

    from jobrun.config import QueueConfig, Settings
    from jobrun.tui.views import dashboard

    path = tmp_path / "jobs.db"
    s = SqliteStore(str(path))
    s.enqueue([job()], now=clock.now())
    s.acquire_round([], {"default": 1}, "gone-1", now=clock.now(), lease=600)
    s.set_concurrency("default", 7)
    s.close()
    reader = open_reader(str(path))
    try:
        settings = Settings(queues={"default": QueueConfig("default", concurrency=3)})
        snap = take(reader, now=clock.now(), settings=settings)
    finally:
        reader.close()
    (running,) = snap.running
    assert running.holder == "gone-1" and not running.holder_alive
    assert {q.name: q.cap for q in snap.queues}["default"] == 7
    out = StringIO()
    Console(file=out, width=100, height=30).print(dashboard(snap, 100, 30))
    assert "gone-1 DEAD" in out.getvalue() and "1/7" in out.getvalue(), out.getvalue()


def test_a_filter_that_stopped_early_says_how_far_and_goes_on(tmp_path: Path) -> None:
    """150k newer jobs and one old match, in miniature: the bounded read stops before the
    match; the note says it searched N of M (at 80 columns) and the next read finds it."""
    from jobrun.tui.browse import in_state, page, search_note

    path = tmp_path / "jobs.db"
    s = SqliteStore(str(path))
    (old,) = s.enqueue([job("t:needle")], now=clock.now())
    s.enqueue([job("t:hay") for _ in range(40)], now=clock.now())
    s.close()
    reader = open_reader(str(path))
    try:
        snap = take(reader, now=clock.now())
        total = in_state(snap.queues, "queued", None)
        assert total == 41
        got = page(reader, "queued", text="needle", scan=10, budget=20)
        assert got.rows == () and got.after is not None
        note = search_note(got, total)
        assert note == "searched 20 of 41: none yet; n searches on" and len(note) < 60
        assert "no job matches" not in note
        more = page(reader, "queued", text="needle", after=got.after, scan=10, budget=40)
        assert [j.id for j in more.rows] == [old]
        assert search_note(page(reader, "queued", text="needle"), total) == ""
    finally:
        reader.close()
