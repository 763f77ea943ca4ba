"""`jobrun store copy SRC DST`, run as the real command: a SQLite store holding jobs in every
state (error histories, results, keys, children of a workflow, its steps), cron fires,
events, a paused queue and the catalog is copied into PostgreSQL and back, and every row of
every table arrives as it was, ids kept. A non-empty target is refused and left untouched;
a PostgreSQL target's ids move past every id the source handed out (pruned ones too)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from jobrun import catalog, enqueue
from jobrun.config import Settings
from jobrun.model import Outcome, error_entry
from jobrun.store import is_postgres, open_store
from jobrun.store.contract import StepRecord, Store
from jobrun.store.copy import TABLES, _cols, _q, _quoted
from support.postgres import fresh_store_url

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
