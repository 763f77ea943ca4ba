"""The SQLite store: files, versions, leases, rescue and pruning, on real files."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import apsw
import pytest

from jobrun.errors import StoreError
from jobrun.lock import HolderLock, holder_alive
from jobrun.store import NewJob, Outcome, SqliteStore
from jobrun.store.migrations import SCHEMA_VERSION
from jobrun.store.sqlite import PAGE_SIZE


def job(task: str = "t:f", **kw: object) -> NewJob:
    base: dict[str, object] = dict(task=task, queue="default", args="[]", kwargs="{}",
                                   priority=0, max_attempts=3, run_at=0.0, scheduled=False)
    base.update(kw)
    return NewJob(**base)  # type: ignore[arg-type]


def test_new_store_is_private_wal_and_versioned(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "sub" / "jobs.db"
    s = SqliteStore(str(path))
    s.enqueue([job()], now=1.0)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(str(path) + "-wal").st_mode) == 0o600
    c = apsw.Connection(str(path))
    assert c.execute("PRAGMA journal_mode").get == "wal"
    assert c.execute("PRAGMA user_version").get == SCHEMA_VERSION
    s.close()


def test_a_job_costs_eight_small_wal_frames(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """What flash pays per job: enqueue, claim and record commit 2 + 3 + 3 pages (the row and
    the one partial index each state enters or leaves), in pages of PAGE_SIZE."""
    s = SqliteStore(str(tmp_path / "j.db"))
    s.enqueue([job() for _ in range(50)], now=1.0)  # the tree is past its first pages
    claims = s.acquire_round([], {"default": 50}, "h", now=1.0, lease=60).claims
    s.record([Outcome(c.id, c.token, "succeeded", result="1") for c in claims], now=1.0)
    conn = s.connection()
    assert conn.execute("PRAGMA page_size").get == PAGE_SIZE == 1024
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.enqueue([job()], now=2.0)
    (c,) = s.acquire_round([], {"default": 1}, "h", now=2.0, lease=60).claims
    assert s.record([Outcome(c.id, c.token, "succeeded", result="1")], now=2.0) == 1
    _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert frames <= 8
    s.close()


def test_an_existing_store_keeps_its_page_size(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "old.db")
    c = apsw.Connection(path)
    c.execute("PRAGMA page_size=4096; PRAGMA journal_mode=WAL; CREATE TABLE t (x)")
    c.close()
    s = SqliteStore(path)
    (i,) = s.enqueue([job()], now=1.0)
    assert s.read("PRAGMA page_size")[0][0] == 4096
    (cl,) = s.acquire_round([], {"default": 1}, "h", now=1.0, lease=60).claims
    assert cl.id == i and s.record([Outcome(i, cl.token, "succeeded", result="1")], now=1.0)
    s.close()


def test_refuses_a_file_that_is_not_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "garbage.db"
    data = b"this is not a database" * 100
    path.write_bytes(data)
    with pytest.raises(StoreError, match="not a SQLite database"):
        SqliteStore(str(path))
    assert path.read_bytes() == data


def test_refuses_a_store_from_a_newer_jobrun(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "new.db")
    c = apsw.Connection(path)
    c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    c.close()
    before = open(path, "rb").read()
    with pytest.raises(StoreError, match="newer than this jobrun"):
        SqliteStore(path)
    assert open(path, "rb").read() == before
    assert not os.path.exists(path + "-wal")


def test_durability_full_sets_synchronous(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = SqliteStore(str(tmp_path / "j.db"), durability="full")
    assert s.connection().execute("PRAGMA synchronous").get == 2
    s2 = SqliteStore(str(tmp_path / "j.db"))
    assert s2.connection().execute("PRAGMA synchronous").get == 1
    with pytest.raises(StoreError, match="durability"):
        SqliteStore(str(tmp_path / "j.db"), durability="fast")


def test_acquire_order_fencing_and_release(store_path: str) -> None:
    s = SqliteStore(store_path)
    s.enqueue([job(priority=0), job(priority=9), job(priority=0)], now=1.0)
    t = s.acquire_round([], {"default": 2}, "h1", now=2.0, lease=60)
    assert [c.id for c in t.claims] == [2, 1]
    c2, c1 = t.claims
    assert c1.token != c2.token and c1.attempt == 1
    # A stale token records nothing; the right one does.
    assert s.record([Outcome(c1.id, c1.token + 1, "succeeded", result="1")], now=3.0) == 0
    assert s.record([Outcome(c1.id, c1.token, "succeeded", result="1")], now=3.0) == 1
    # Released: back to queued, attempt not counted.
    assert s.record([Outcome(c2.id, c2.token, "released")], now=3.0) == 1
    rec = s.get(c2.id)
    assert rec is not None and rec.state == "queued" and rec.attempts == 0


def test_promotion_and_next_due(store_path: str) -> None:
    s = SqliteStore(store_path)
    s.enqueue([job(run_at=100.0, scheduled=True)], now=1.0)
    t = s.acquire_round([], {"default": 5}, "h", now=50.0, lease=60)
    assert t.claims == [] and t.next_due == 100.0
    t = s.acquire_round([], {"default": 5}, "h", now=100.0, lease=60)
    assert len(t.claims) == 1 and t.next_due is None


def test_paused_queue_is_not_claimed(store_path: str) -> None:
    s = SqliteStore(store_path)
    s.enqueue([job()], now=1.0)
    s.set_paused("default", True)
    assert s.acquire_round([], {"default": 5}, "h", now=2.0, lease=60).claims == []
    s.set_paused("default", False)
    assert len(s.acquire_round([], {"default": 5}, "h", now=2.0, lease=60).claims) == 1


def test_rescue_of_a_dead_holder_counts_the_attempt(store_path: str) -> None:
    s = SqliteStore(store_path)
    s.enqueue([job(max_attempts=2), job(max_attempts=1)], now=1.0)
    holder = "4242-deadbeef"
    # A real process holds the holder lock, then dies.
    code = ("import sys,time; from jobrun.lock import HolderLock; "
            f"l=HolderLock({store_path!r}, {holder!r}); assert l.acquire(); "
            "print('locked', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    s.acquire_round([], {"default": 5}, holder, now=2.0, lease=600)
    assert holder_alive(store_path, holder)
    p.kill()
    p.wait()
    assert not holder_alive(store_path, holder)
    rows = s.rescue_holder(holder, "worker lost", now=3.0)
    assert sorted((r[0], r[4]) for r in rows) == [(1, "queued"), (2, "dead")]
    rec = s.get(1)
    assert rec is not None and rec.attempts == 1 and rec.errors[-1]["type"] == "WorkerLost"


def test_expired_lease_is_rescued(store_path: str) -> None:
    s = SqliteStore(store_path)
    s.enqueue([job()], now=1.0)
    (c,) = s.acquire_round([], {"default": 1}, "h", now=2.0, lease=5).claims
    assert s.expired_leases(now=6.0) == []
    assert s.extend_lease(c.id, c.token, now=6.0, lease=5)
    assert s.expired_leases(now=10.0) == []
    assert s.expired_leases(now=11.5) == [(c.id, "h")]
    assert len(s.rescue_expired(c.id, "stuck", now=11.5)) == 1
    assert not s.extend_lease(c.id, c.token, now=12.0, lease=5)


def test_holder_lock_is_exclusive(store_path: str) -> None:
    a = HolderLock(store_path, "x")
    assert a.acquire()
    assert holder_alive(store_path, "x")
    a.release(unlink=True)
    assert not holder_alive(store_path, "x")


def test_prune_keeps_unfinished_and_recent(store_path: str) -> None:
    s = SqliteStore(store_path)
    s.enqueue([job() for _ in range(1200)], now=1.0)
    claims = s.acquire_round([], {"default": 1100}, "h", now=2.0, lease=60).claims
    s.record([Outcome(c.id, c.token, "succeeded", result="null") for c in claims[:1000]],
             now=10.0)
    s.record([Outcome(c.id, c.token, "dead", error={"type": "X"}) for c in claims[1000:]],
             now=10.0)
    assert s.prune(5.0) == 0
    assert s.prune(11.0, ("succeeded", "cancelled"), batch=300) == 1000
    assert s.prune(11.0, ("dead",)) == 100
    assert s.read("SELECT count(*) FROM jobs")[0][0] == 100


def test_error_history_is_json(store_path: str) -> None:
    s = SqliteStore(store_path)
    s.enqueue([job()], now=1.0)
    (c,) = s.acquire_round([], {"default": 1}, "h", now=2.0, lease=60).claims
    s.record([Outcome(c.id, c.token, "retrying", run_at=5.0,
                      error={"type": "E", "message": "m", "at": 2.0})], now=2.0)
    raw = s.read("SELECT errors FROM jobs WHERE id = 1")[0][0]
    assert json.loads(raw) == [{"type": "E", "message": "m", "at": 2.0}]
    assert time.time() > 0


def test_an_old_store_is_migrated_forward(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from jobrun.store.migrations import STEPS

    path = str(tmp_path / "v1.db")
    c = apsw.Connection(path)
    c.execute(STEPS[1])
    c.execute("PRAGMA user_version = 1")
    c.execute("INSERT INTO jobs (task, queue, state, max_attempts, run_at, enqueued_at) "
              "VALUES ('a:b', 'default', 'queued', 3, 0, 0)")
    c.close()
    s = SqliteStore(path)
    assert s.read("PRAGMA user_version")[0][0] == SCHEMA_VERSION == max(STEPS)
    cols = {r[1] for r in s.read("PRAGMA table_info(jobs)")}
    assert "ckey" in cols
    ops = {r[1] for r in s.read("PRAGMA table_info(processed_operations)")}
    assert {"state", "owner"} <= ops
    assert len(s.acquire_round([], {"default": 5}, "h", now=1.0, lease=60).claims) == 1


def test_a_store_folder_writable_by_others_is_warned_about(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with caplog.at_level("WARNING", logger="jobrun.store"):
        SqliteStore(str(shared / "jobs.db")).close()
        SqliteStore(str(shared / "jobs.db")).close()
    warnings = [r for r in caplog.records if "writable by others" in r.getMessage()]
    assert len(warnings) == 1 and "777" in warnings[0].getMessage()


def test_a_claimed_row_no_enqueue_could_write_goes_dead_alone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Read after the round's commit (other writers wait less): a row whose args are not a
    JSON array goes dead with BadPayload in a write of its own; the others are claimed."""
    s = SqliteStore(str(tmp_path / "j.db"))
    ids = s.enqueue([job(args="[1]"), job(args="[2]"), job(args="[3]")], now=1.0)
    raw = apsw.Connection(str(tmp_path / "j.db"))
    raw.execute("UPDATE jobs SET args = '{not json' WHERE id = ?", (ids[1],))
    raw.close()
    for ahead in (None, {"default": 5}):
        claims = s.acquire_round([], {"default": 1}, "h", now=2.0, lease=60,
                                 ahead=ahead).claims
        if ahead is None:
            assert [c.id for c in claims] == [ids[0]]
    assert [c.id for c in claims] == [ids[2]] and claims[0].held
    bad = s.get(ids[1])
    assert bad is not None and bad.state.value == "dead"
    assert bad.errors[-1]["type"] == "BadPayload"
    s.close()
