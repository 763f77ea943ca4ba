"""`jobrun store copy SRC DST`, run as the real command: a SQLite store holding jobs in every
state (error histories, results, keys, children of a workflow, its steps), cron fires,
events, a paused queue and the catalog is copied into PostgreSQL and back, and every row of
every table arrives as it was, ids kept. A non-empty target is refused and left untouched;
a PostgreSQL target's ids move past every id the source handed out (pruned ones too).
A source that a live service serves is refused (its jobs would run twice); of two copies
racing into one target one wins and the other says "not empty", cleanly; an empty location
is refused; a PostgreSQL store is named without its password."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import JOBRUN, run_cli, wait_for
from jobrun import catalog, enqueue
from jobrun.config import Settings
from jobrun.model import Outcome, error_entry
from jobrun.presence import presence_for
from jobrun.store import is_postgres, open_store
from jobrun.store.contract import StepRecord, Store
from jobrun.store.copy import TABLES, _cols, _q, _quoted
from support.postgres import any_store, fresh_store_url

T0 = 1_000_000.0


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_store_url() as u:
        yield u


def _job(task: str, key: str | None = None, delay: float | None = None) -> Any:
    d = catalog.resolve(None, None, None, Settings(), None)
    return enqueue.new_job(task, [1, "two"], {"k": [3]}, {"key": key, "delay": delay,
                                                         "max_attempts": 2}, T0, d)


def _fill(store: Store) -> None:
    """One of everything the copy must carry."""
    store.enqueue([_job(f"t:{i}") for i in range(6)] + [_job("t:key", key="k1"),
                                                       _job("t:later", delay=3600)], now=T0)
    claims = store.acquire_round([], {"default": 6}, "h1", now=T0 + 1, lease=60).claims
    err = error_entry("ValueError", "bad \u00e9 input", 1, T0 + 2, traceback="Traceback ...")
    store.record_outcomes([
        Outcome(claims[0].id, claims[0].token, "succeeded", result=json.dumps({"ok": 1})),
        Outcome(claims[1].id, claims[1].token, "retrying", run_at=T0 + 50, error=err),
        Outcome(claims[2].id, claims[2].token, "dead", error=err)], now=T0 + 2)
    store.cancel(claims[3].id, now=T0 + 3)
    parent = claims[4]  # a workflow: a gather of two children, and a recorded step
    store.record_step(parent.id, parent.token, StepRecord(1, "fetch", "step", "succeeded",
                                                          result="[1]", attempts=1,
                                                          started=T0, finished=T0 + 1))
    store.start_children(parent.id, parent.token, StepRecord(2, "g", "gather", "waiting"),
                         [_job("t:child"), _job("t:child")], fanin=True, now=T0 + 4)
    store.fire("nightly", T0 + 10, lambda: _job("t:cron"), now=T0 + 10)
    store.send_event("paid", json.dumps({"order": 7}), now=T0 + 5)
    store.set_paused("mail", True)
    store.publish_catalog("h1", {"t:0": json.dumps({"queue": "default"})}, now=T0)


def _dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table in TABLES:
        rows = store.read(_q("rows", table=_quoted(table), columns=_cols(table)),  # type: ignore[attr-defined]
                          {} if is_postgres(store.path) else None)
        out[table] = sorted((tuple(r) for r in rows
                             if table != "meta" or not str(r[0]).startswith(("holder:", "leader"))),
                            key=repr)
    return out


def _columns(store: Store, table: str) -> set[str]:
    if is_postgres(store.path):
        rows = store.read("SELECT column_name FROM information_schema.columns "  # type: ignore[attr-defined]
                          "WHERE table_schema = current_schema() AND table_name = %(t)s",
                          {"t": table})
    else:
        rows = store.read(f"SELECT name FROM pragma_table_info('{table}')")  # type: ignore[attr-defined]
    return {r[0] for r in rows}


def test_every_column_of_both_stores_is_copied(tmp_path: Path, url: str) -> None:
    for where in (str(tmp_path / "jobs.db"), url):
        store = open_store(where)
        try:
            for table, cols in TABLES.items():
                assert _columns(store, table) == set(cols), (where, table)
        finally:
            store.close()


def test_sqlite_to_postgres_and_back_row_for_row(tmp_path: Path, url: str) -> None:
    db, back = str(tmp_path / "jobs.db"), str(tmp_path / "back.db")
    src = open_store(db)
    _fill(src)
    want = _dump(src)
    src.close()
    assert all(want[t] for t in TABLES if t not in ("rate_buckets", "processed_operations"))
    states = {r[6] for r in want["jobs"]}
    assert {"succeeded", "retrying", "dead", "cancelled", "running", "queued",
            "scheduled"} <= states
    done = run_cli("store", "copy", db, url, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["copied"]["jobs"] == len(want["jobs"])
    pg = open_store(url)
    try:
        assert _dump(pg) == want
        rec = pg.get(want["jobs"][2][0])
        assert rec is not None
        ids = pg.enqueue([_job("t:new")], now=T0 + 20)
        assert ids[0] > max(r[0] for r in want["jobs"])  # the identity moved past them
        pg.cancel(ids[0], now=T0 + 21)
        pg.prune(T0 + 1e9)
    finally:
        pg.close()
    done = run_cli("store", "copy", url, back)
    assert done.returncode == 0, done.stderr
    assert "jobs" in done.stdout
    copy = open_store(back)
    try:
        got = _dump(copy)
    finally:
        copy.close()
    pg = open_store(url)
    try:
        assert got == _dump(pg)
    finally:
        pg.close()


def test_a_non_empty_target_is_refused_and_left_as_it_was(tmp_path: Path, url: str) -> None:
    db = str(tmp_path / "jobs.db")
    src = open_store(db)
    _fill(src)
    src.close()
    target = open_store(url)
    target.enqueue([_job("t:mine")], now=T0)
    before = _dump(target)
    target.close()
    done = run_cli("store", "copy", db, url)
    assert done.returncode == 1
    assert "not empty" in done.stderr and "jobs" in done.stderr
    target = open_store(url)
    try:
        assert _dump(target) == before
    finally:
        target.close()
    missing = run_cli("store", "copy", str(tmp_path / "nope.db"), url)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert not os.path.exists(tmp_path / "nope.db")


def test_a_postgres_copy_never_reuses_an_id_the_source_handed_out(url: str) -> None:
    src = open_store(url)
    ids = src.enqueue([_job(f"t:{i}") for i in range(5)], now=T0)
    for i in ids[-2:]:
        src.cancel(i, now=T0 + 1)
    src.prune(T0 + 1e9)  # the two newest are gone: their ids must stay unused
    src.close()
    with fresh_store_url() as other:
        done = run_cli("store", "copy", url, other)
        assert done.returncode == 0, done.stderr
        dst = open_store(other)
        try:
            (new,) = dst.enqueue([_job("t:new")], now=T0 + 2)
            assert new > max(ids)
        finally:
            dst.close()


# -- issue 16: a served source, two copies racing into one target, an empty location ---------
def _fill_many(where: str) -> dict[str, list[tuple[Any, ...]]]:
    """A SQLite source of one of everything and some hundreds of jobs: its rows."""
    src = open_store(where)
    try:
        _fill(src)
        src.enqueue([_job(f"t:bulk{i % 7}") for i in range(500)], now=T0)
        return _dump(src)
    finally:
        src.close()


def _copying(src: str, dst: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*JOBRUN, "store", "copy", src, dst], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _race_ends(procs: list[subprocess.Popen[str]], want: dict[str, Any], dst: str) -> None:
    """Exactly one copy won; the other said the target is not empty, in one clean line; the
    target holds the source's rows, once."""
    outputs = [p.communicate(timeout=60) for p in procs]
    ends = [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs)]
    assert sorted(code for code, _, _ in ends) == [0, 1], ends
    (_, _, err), = [e for e in ends if e[0] == 1]
    assert f"is not empty ({len(want['jobs'])} jobs" in err, err
    assert err.count("\n") == 1 and "duplicate key" not in err and "Constraint" not in err
    target = open_store(dst)
    try:
        assert _dump(target) == want
    finally:
        target.close()


def test_two_copies_racing_into_one_sqlite_target(tmp_path: Path) -> None:
    db, dst = str(tmp_path / "jobs.db"), str(tmp_path / "new.db")
    want = _fill_many(db)
    _race_ends([_copying(db, dst) for _ in range(2)], want, dst)


def test_two_copies_racing_into_one_postgres_target(tmp_path: Path, url: str) -> None:
    """Both copies are held at the target's jobs table (a lock of the test's) until both
    wait there or on the copy lock, so both would find it empty without that lock."""
    import psycopg

    db = str(tmp_path / "jobs.db")
    want = _fill_many(db)
    name = f"copyrace{os.getpid()}"
    dst = f"{url}&application_name={name}"
    open_store(dst).close()  # the schema made: the copies' migrations wait on nothing
    with psycopg.connect(url) as hold, psycopg.connect(url, autocommit=True) as look:
        hold.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
        procs = [_copying(db, dst) for _ in range(2)]
        wait_for(lambda: look.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND "
            "wait_event_type = 'Lock'", (name,)).fetchone() == (2,), 30, "both copies waiting")
        hold.rollback()
    _race_ends(procs, want, dst)


def _served(where: str) -> bool:
    store = open_store(where, readonly=True)
    try:
        presence = presence_for(store)
        return any(presence.alive(h) for h in presence.holders())
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_source_that_live_services_serve_is_refused(tmp_path: Path, kind: str) -> None:
    with any_store(kind, str(tmp_path)) as src, any_store(kind, str(tmp_path / "t")) as dst:
        os.makedirs(tmp_path / "t", exist_ok=True)
        store = open_store(src)
        store.enqueue([_job("t:queued")], now=T0)
        store.close()
        service = subprocess.Popen([*JOBRUN, "start", "--store", src], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: _served(src) or service.poll() is not None, 30, "a live service")
            done = run_cli("store", "copy", src, dst)
            assert done.returncode == 1 and service.poll() is None, done.stderr
            assert "served by 1 live service(s)" in done.stderr, done.stderr
            assert "stop them first" in done.stderr and "systemctl stop" in done.stderr
            assert done.stderr.count("\n") == 1
            if kind == "sqlite":
                assert not os.path.exists(dst)  # refused before the target was made
        finally:
            service.send_signal(signal.SIGTERM)
            service.communicate(timeout=60)
        done = run_cli("store", "copy", src, dst)
        assert done.returncode == 0, done.stderr
        assert "copied 1 jobs" in done.stdout


def test_an_empty_location_is_refused(tmp_path: Path) -> None:
    db = str(tmp_path / "jobs.db")
    open_store(db).close()
    for args, role in (((db, ""), "target"), (("", db), "source"), ((db, "  "), "target")):
        done = run_cli("store", "copy", *args, cwd=str(tmp_path))
        assert done.returncode == 1
        assert f"the {role} location is empty" in done.stderr, done.stderr
    assert sorted(os.listdir(tmp_path)) == ["jobs.db"]  # nothing made in the current folder


def test_postgres_messages_name_the_database_without_its_password(tmp_path: Path,
                                                                  url: str) -> None:
    secret = url.replace("postgresql://postgres@", "postgresql://postgres:s3cret@")
    assert secret != url
    db = str(tmp_path / "jobs.db")
    _fill_many(db)
    ends = [run_cli("store", "copy", db, secret), run_cli("store", "copy", db, secret),
            run_cli("store", "copy", secret, secret)]
    assert [e.returncode for e in ends] == [0, 1, 1]
    for e in ends:
        text = e.stdout + e.stderr
        assert "s3cret" not in text and "postgres:***@" in text, text
        assert url.split("@", 1)[1] in text, text  # host, port, database and schema
