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
