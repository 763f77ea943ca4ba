"""A full disk, on purpose.

1. In process, `PRAGMA max_page_count` just above the store's size on the producer's
   connection: `enqueue` raises StoreError wrapping SQLITE_FULL and writes nothing (not even
   part of an `enqueue_many`), the connection is usable again once there is room, and every
   job acknowledged before is there, intact.
2. In process, every connection jobrun opens is capped (SqliteStore._open wrapped) and the
   store is filled up to the cap with a ballast table: the embedded service cannot record its
   results. It keeps running and logs it; the producer is refused; once the ballast is deleted
   every job accepted before finishes.
3. A real `jobrun start` process on a real full filesystem (a small tmpfs filled with a
   ballast file, root only): the same, with ENOSPC coming from the kernel.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import time
from pathlib import Path

import apsw
import pytest
from torture_util import (
    Capture,
    audit_rows,
    capped_open,
    integrity,
    plain,
    write_config,
    write_tasks_module,
)

import jobrun
from crashapp.harness import ServiceProc, wait_for, wait_serving
from jobrun import catalog
from jobrun.config import Settings, parse
from jobrun.errors import StoreError
from jobrun.registry import REGISTRY
from jobrun.store.sqlite import SqliteStore

pytestmark = pytest.mark.torture


def _count(conn: apsw.Connection) -> tuple[int, int]:
    return conn.execute("SELECT count(*), coalesce(max(id), 0) FROM jobs").fetchone()


def _assert_full(exc: StoreError) -> None:
    assert isinstance(exc.__cause__, apsw.FullError), repr(exc.__cause__)
    assert "is full" in str(exc), str(exc)


def test_enqueue_on_a_full_store_raises_store_error_and_writes_nothing(
        store_path: str, long: bool, seed: int) -> None:
    import random

    rng = random.Random(seed)
    rounds = 40 if long else 5
    app = jobrun.App(store_path)
    acked: dict[int, str] = {}
    refused = 0
    try:
        for i in range(20):
            acked[app.enqueue("torture.disk:t", args=[f"seed-{i}"]).id] = f"seed-{i}"
        conn = app.store.connection()  # this thread's: the one enqueue uses
        cap = int(conn.execute("PRAGMA page_count").get) + 2
        for r in range(rounds):
            conn.execute(f"PRAGMA max_page_count = {cap}").fetchall()
            # Fill to the cap through the public API, then check every kind of refusal.
            for n in range(100_000):
                payload = f"r{r}-{n}-" + "x" * rng.randrange(500, 12_000)
                before = _count(conn)
                try:
                    job = app.enqueue("torture.disk:t", args=[payload])
                except StoreError as exc:
                    _assert_full(exc)
                    refused += 1
                    assert _count(conn) == before, "a refused enqueue wrote something"
                    assert not conn.in_transaction
                    break
                acked[job.id] = payload
            else:
                raise AssertionError("the store never filled up")
            before = _count(conn)
            with pytest.raises(StoreError) as many:
                app.enqueue_many([jobrun.Call("torture.disk:t", [f"m{k}" + "y" * 3000])
                                  for k in range(30)])
            _assert_full(many.value)
            with pytest.raises(StoreError) as keyed:
                app.enqueue("torture.disk:t", args=["z" * 20_000], key=f"k{r}")
            _assert_full(keyed.value)
            assert _count(conn) == before, "a refused enqueue_many/keyed enqueue wrote rows"
            assert integrity(conn) == "ok"
            # Room is made: the same connection works again at once. Room for one small job
            # is a page split in the table and in each index its row enters (a queued job
            # enters five of ten), so at least 12 pages: 2 failed now and then (seed 4033728).
            cap = int(conn.execute("PRAGMA page_count").get) + rng.randrange(12, 24)
            conn.execute(f"PRAGMA max_page_count = {cap}").fetchall()
            job = app.enqueue("torture.disk:t", args=[f"after-{r}"])
            acked[job.id] = f"after-{r}"
    finally:
        app.close()
    db = plain(store_path)
    try:
        assert integrity(db) == "ok"
        rows = audit_rows(db)
        missing = [i for i in acked if i not in rows]
        assert not missing, f"acknowledged jobs lost: {missing[:10]}"
        wrong = [i for i, p in acked.items() if rows[i]["args"] != [p]]
        assert not wrong, f"acknowledged jobs changed: {wrong[:10]}"
        assert set(rows) == set(acked), "rows nobody acknowledged"
    finally:
        db.close()
    print(f"{len(acked)} jobs acknowledged, {refused} + {2 * rounds} refusals, all intact")


# -- the embedded service, every jobrun connection capped ------------------------------------
_GATE: dict[str, str] = {}
_RESULT = 64_000  # bytes of each result: recording one needs more than the room left
_ROOM = 12 * 4096  # bytes left for claims, and for the catalog the service publishes


_reg = jobrun.App()  # only to register the task below (the test's own App is per test)


@_reg.task
def disk_job(i: int) -> str:
    gate = _GATE["path"]
    deadline = time.monotonic() + 60
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise RuntimeError("gate never opened")
        time.sleep(0.01)
    return f"{i}:" + "r" * _RESULT


def _trial_catalog(app: jobrun.App, db: apsw.Connection, settings: Settings) -> int:
    """Publish the catalog a service of this process would, then delete it: the pages it
    took (returned) stay in the store, free for the service's own publish."""
    before = int(db.execute("PRAGMA page_count").get)
    specs = [s for n in REGISTRY.names() if (s := REGISTRY.find(n)) is not None]
    app.store.publish_catalog("disk-full-trial", catalog.entries(specs, settings), now=time.time())
    db.execute("DELETE FROM catalog WHERE holder = 'disk-full-trial'")
    return int(db.execute("PRAGMA page_count").get) - before


def _fill(db: apsw.Connection, pages: int) -> None:
    """Grow the store (our uncapped connection) until it has `pages` pages or more."""
    db.execute("CREATE TABLE IF NOT EXISTS torture_ballast (b BLOB)")
    while db.execute("PRAGMA page_count").get < pages:
        db.execute("INSERT INTO torture_ballast VALUES (zeroblob(200000))")


def test_embedded_service_survives_a_full_store_and_finishes_every_accepted_job(
        store_path: str, tmp_path: Path, long: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    n_jobs = 200 if long else 12
    cap: dict[str, int | None] = {"pages": None}
    monkeypatch.setattr(SqliteStore, "_open", capped_open(cap))
    _GATE["path"] = str(tmp_path / "gate")
    cap_log = Capture()
    logging.getLogger("jobrun").addHandler(cap_log)
    settings = parse('[jobrun]\npoll = "100ms"\nlease = "5s"\n'
                     "[queues.default]\nconcurrency = 4\n")[0]
    producer = jobrun.App(store_path, settings=settings)
    db: apsw.Connection | None = None
    try:
        accepted = [producer.enqueue(disk_job.name, args=[i]).id for i in range(n_jobs)]
        db = plain(store_path)
        # The store is full: ballast up to a few pages under the size every jobrun
        # connection is capped at (room to claim jobs, not to record their results).
        # Once deleted, the ballast is the room every result needs.
        # The service publishes every task this process registered (other tests add more):
        # a trial publish of that catalog, deleted at once, leaves its pages free for the
        # service's own; one result is still larger than the room and those pages.
        page = int(db.execute("PRAGMA page_size").get)
        catalog_pages = _trial_catalog(producer, db, settings)
        monkeypatch.setattr(sys.modules[__name__], "_RESULT",
                            max(_RESULT, 2 * (_ROOM + catalog_pages * page)))
        _fill(db, int(db.execute("PRAGMA page_count").get) + n_jobs * (_RESULT // page + 3))
        _trial_catalog(producer, db, settings)
        cap["pages"] = int(db.execute("PRAGMA page_count").get) + _ROOM // page
        producer.store.connection().execute(
            f"PRAGMA max_page_count = {cap['pages']}").fetchall()
        producer.start()  # its store, scheduler and maintenance connections are all capped
        service = producer._service
        assert service is not None
        wait_for(lambda: db.execute("SELECT count(*) FROM jobs WHERE state = 'running'").get
                 >= 4, 10, "the service to claim jobs")
        before = _count(db)
        with pytest.raises(StoreError) as refused:
            producer.enqueue(disk_job.name, args=["x" * 200_000])
        _assert_full(refused.value)
        assert _count(db) == before
        # The jobs finish, but their results cannot be written.
        Path(_GATE["path"]).touch()
        wait_for(lambda: "is full" in cap_log.text(logging.ERROR), 10,
                 "the service to log the full store")
        time.sleep(1.0)
        assert all(t.is_alive() for t in service._threads), "a service thread died"
        assert db.execute("SELECT count(*) FROM jobs WHERE state = 'succeeded'").get == 0
        # Room is made: every job accepted before finishes, with its result.
        db.execute("DELETE FROM torture_ballast")
        wait_for(lambda: db.execute("SELECT count(*) FROM jobs WHERE state = 'succeeded'").get
                 == n_jobs, 60 if long else 20, "every accepted job to succeed")
        producer.stop(10)
        rows = audit_rows(db)
        for i, job_id in enumerate(accepted):
            assert rows[job_id]["state"] == "succeeded"
            assert rows[job_id]["result"] == f"{i}:" + "r" * _RESULT
        assert integrity(db) == "ok"
    finally:
        logging.getLogger("jobrun").removeHandler(cap_log)
        producer.close()
        if db is not None:
            db.close()
    errors = cap_log.text(logging.ERROR)
    print(f"logged while full ({errors.count(chr(10)) + 1} error lines), first: "
          f"{errors.splitlines()[0][:200]}")


# -- a real service on a real full filesystem ---------------------------------------------------
TASKS = '''
@app.task
def fat(i, gate, size, pad=""):
    deadline = time.monotonic() + 120
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise RuntimeError("gate never opened")
        time.sleep(0.01)
    return f"{i}:" + "r" * size
'''


def _ballast(folder: Path) -> list[Path]:
    """Fill the filesystem of `folder` to the last byte (ENOSPC) with ballast files."""
    files = []
    chunk = b"\0" * (1 << 20)
    for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
        part = chunk[:size]
        p = folder / f"ballast-{size}"
        files.append(p)
        with open(p, "wb", buffering=0) as f:
            while True:
                try:
                    f.write(part)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    return files


def test_service_process_on_a_full_filesystem(tmp_path: Path, tmpfs, long: bool) -> None:
    n_jobs = 300 if long else 24
    result_size = 64_000
    fs = tmpfs(64 << 20 if long else 16 << 20)
    store = fs / "jobs.db"
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    write_tasks_module(cfg_dir, "tt_disk_tasks", TASKS)
    cfg = write_config(cfg_dir, store, ["tt_disk_tasks"], concurrency=4)
    gate = tmp_path / "gate"
    producer = jobrun.App(str(store))
    accepted = [producer.enqueue("tt_disk_tasks:fat", args=[i, str(gate), result_size]).id
                for i in range(n_jobs)]
    svc = ServiceProc(cfg, tmp_path / "service.log")
    db = plain(store)
    ballast: list[Path] = []
    try:
        wait_serving(str(store), svc)
        wait_for(lambda: db.execute("SELECT count(*) FROM jobs WHERE state = 'running'").get
                 >= 4, 20, "the service to claim jobs")
        # The filesystem fills up.
        ballast = _ballast(fs)
        before = _count(db)
        filling: list[int] = []
        for k in range(500):  # whatever room the WAL file had left goes first
            try:
                filling.append(producer.enqueue("tt_disk_tasks:fat", args=[
                    -1 - k, str(gate), 0], kwargs={"pad": "p" * 100_000}).id)
            except StoreError as exc:
                _assert_full(exc)
                break
        else:
            raise AssertionError("enqueue never hit the full disk")
        assert _count(db) == (before[0] + len(filling), max([before[1], *filling])), \
            "a refused enqueue wrote something"
        # The running jobs finish; their results do not fit.
        gate.touch()
        wait_for(lambda: "is full" in svc.log_text(), 20, "the service to log the full disk")
        time.sleep(1.5)
        assert svc.alive(), "the service died on a full disk:\n" + svc.log_text()[-3000:]
        # Room is made.
        for p in ballast:
            p.unlink()
        ballast = []
        wait_for(lambda: db.execute("SELECT count(*) FROM jobs WHERE state = 'succeeded'").get
                 == n_jobs + len(filling), 120 if long else 40,
                 "every job accepted before to succeed")
        svc.send(signal.SIGTERM)
        assert svc.wait(30) == 0, svc.log_text()[-3000:]
        rows = audit_rows(db)
        for i, job_id in enumerate(accepted):
            assert rows[job_id]["result"] == f"{i}:" + "r" * result_size
        assert integrity(db) == "ok"
        log = svc.log_text()
        full_lines = [ln for ln in log.splitlines() if "is full" in ln]
        print(f"{n_jobs} jobs, {len(filling)} accepted while filling, {len(full_lines)} log lines "
              f"about the full disk; first: {full_lines[0][:200] if full_lines else None}")
        assert "Traceback" not in log, log[-3000:]
    finally:
        for p in ballast:
            p.unlink(missing_ok=True)
        svc.kill()
        db.close()
        producer.close()
