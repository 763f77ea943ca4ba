"""How a store connection waits for the write lock (jobrun/store/busy.py): short even sleeps
to the same 30 s total, instead of SQLite's 1-2-5-10-15-20-25 ms ladder that a web
request's enqueue beside a busy service paid in full."""

from __future__ import annotations

import threading
from pathlib import Path

import apsw
import pytest

from jobrun.errors import StoreError
from jobrun.store import busy
from jobrun.store.busy import LONGEST, delay, wait_briefly
from jobrun.store.files import wrap
from jobrun.store.sqlite import SqliteStore
from support.wait import wait_for


def test_the_sleeps_stay_short_and_add_up_to_the_timeout() -> None:
    sleeps = []
    while (d := delay(len(sleeps), 30.0)) is not None:
        sleeps.append(d)
    assert sleeps[:5] == [50e-6, 100e-6, 200e-6, 400e-6, LONGEST]
    assert max(sleeps) == LONGEST
    assert sum(sleeps) == pytest.approx(30.0)
    assert delay(0, 0.0) is None


def test_a_writer_waits_for_the_lock_and_then_writes(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Given another connection holding the write lock, the store's own connection waits
    through busy.py's sleeps (counted here; SQLite's timeout would make none) and commits
    once the lock is released."""
    store = SqliteStore(tmp_path / "jobs.db")
    holder = apsw.Connection(store.path)
    holder.execute("BEGIN IMMEDIATE")
    sleeps: list[float] = []
    real_sleep = busy.time.sleep

    def counted(seconds: float) -> None:  # time.sleep itself: count the writer's only
        if threading.current_thread().name == "writer":
            sleeps.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(busy.time, "sleep", counted)
    result: list[object] = []

    def enqueue() -> None:
        try:
            with store.write() as c:
                c.execute("CREATE TABLE IF NOT EXISTS probe (x)")
                c.execute("INSERT INTO probe VALUES (1)")
            result.append("ok")
        except Exception as exc:  # reported below
            result.append(exc)

    t = threading.Thread(target=enqueue, name="writer")
    t.start()
    wait_for(lambda: len(sleeps) >= 3, what="the writer sleeping on the held lock")
    assert not result and max(sleeps) <= LONGEST
    holder.execute("ROLLBACK")
    t.join(10)
    assert result == ["ok"]
    assert store.connection().execute("SELECT count(*) FROM probe").get == 1
    holder.close()
    store.close()


def test_a_lock_held_past_the_timeout_is_a_clear_error(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "jobs.db")
    holder = apsw.Connection(store.path)
    holder.execute("BEGIN IMMEDIATE")
    conn = store.connection()
    wait_briefly(conn, 30)  # give up after 30 ms of sleeps
    with pytest.raises(StoreError, match="stayed locked"), store.write():
        pass
    holder.execute("ROLLBACK")
    holder.close()
    store.close()


def _rollback_file(path: Path) -> str:
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    return str(path)


def _read_then_write(conn: apsw.Connection) -> None:
    """A deferred transaction: a read lock first, the write lock wanted after."""
    conn.execute("BEGIN")
    try:
        conn.execute("SELECT count(*) FROM t").fetchall()
        conn.execute("INSERT INTO t VALUES (1)")
    finally:
        conn.execute("ROLLBACK")


def test_a_busy_sqlite_returns_at_once_says_so_not_that_it_waited(tmp_path: Path) -> None:
    """Rollback-journal mode: this connection holds a read lock and wants to write while
    another holds the write lock: SQLite fails it at once, without the busy handler; the
    message must not claim a 30 s wait."""
    path = _rollback_file(tmp_path / "plain.db")
    other = apsw.Connection(path)
    other.execute("BEGIN IMMEDIATE")
    conn = apsw.Connection(path)
    wait_briefly(conn, 30_000)
    with pytest.raises(apsw.BusyError) as caught:
        _read_then_write(conn)
    message = str(wrap(caught.value, path, conn=conn))
    assert "busy at once, without waiting" in message and "stayed locked" not in message
    # On a caller's own connection jobrun does not know its timeout: it says so.
    raw = apsw.Connection(path)
    with pytest.raises(apsw.BusyError) as caught:
        _read_then_write(raw)
    assert "connection= given" in str(wrap(caught.value, path, conn=raw))
    other.execute("ROLLBACK")
    for c in (other, conn, raw):
        c.close()


def test_a_step_failed_at_once_is_run_again_until_it_passes(tmp_path: Path) -> None:
    """retried() runs the step again after an at-once busy: once the write lock is free,
    it passes; while the lock stays held past the timeout, the error says it was retried."""
    path = _rollback_file(tmp_path / "plain.db")
    other = apsw.Connection(path)
    other.execute("BEGIN IMMEDIATE")
    conn = apsw.Connection(path)
    wait_briefly(conn, 50)
    tries: list[int] = []

    def step() -> str:
        tries.append(1)
        if len(tries) == 3:
            other.execute("ROLLBACK")  # the other writer finishes between two tries
        _read_then_write(conn)
        return "done"

    assert busy.retried(conn, step) == "done" and len(tries) == 3
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(apsw.BusyError) as caught:
        busy.retried(conn, lambda: _read_then_write(conn))
    message = str(wrap(caught.value, path, conn=conn))
    assert "tried again all along" in message and "stayed locked" not in message
    other.execute("ROLLBACK")
    other.close()
    conn.close()


def test_a_wait_that_ran_out_is_not_run_again(tmp_path: Path) -> None:
    path = _rollback_file(tmp_path / "plain.db")
    other = apsw.Connection(path)
    other.execute("BEGIN EXCLUSIVE")
    conn = apsw.Connection(path)
    wait_briefly(conn, 20)
    tries: list[int] = []

    def step() -> None:
        tries.append(1)
        conn.execute("SELECT count(*) FROM t").fetchall()  # waits for the read lock, runs out

    with pytest.raises(apsw.BusyError) as caught:
        busy.retried(conn, step)
    assert len(tries) == 1
    assert "stayed locked for 30s" in str(wrap(caught.value, path, conn=conn))
    other.execute("ROLLBACK")
    other.close()
    conn.close()
