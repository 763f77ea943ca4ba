"""Held claims (a service claims ahead of its free workers: `running`, `started_at` NULL, the
attempt not counted yet) as every operator view shows them, on real stores: the console's
counts, running list, jobs list and job view, `explain`, `ls`/`show`/`stats` and the metrics
tell them apart from the jobs a worker runs."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console as RichConsole

from conftest import run_cli
from jobrun import clock
from jobrun.model import JobRecord, JobState
from jobrun.ops.explain import Facts, gather, reasons
from jobrun.ops.metrics import _QueueCollector
from jobrun.ops.stats import queue_stats
from jobrun.settings import QueueConfig, Settings
from jobrun.store.contract import Store
from jobrun.store.sqlite import SqliteStore
from jobrun.tui.app import Console
from jobrun.tui.browse import detail, page
from jobrun.tui.rows import head_line, job_cells, queue_cells
from jobrun.tui.snapshot import take
from jobrun.tui.views import dashboard
from store.test_contract import job
from support.pilot import drive, text_of, until
from support.postgres import fresh_store_url

SETTINGS = Settings(queues={"default": QueueConfig("default", concurrency=4)})


def held_store(store: Store, now: float) -> tuple[list[int], list[int]]:
    """Six jobs: one claimed and started, three held by h1 (claimed ahead), two queued.
    The (started, held) ids."""
    store.enqueue([job() for _ in range(6)], now=now - 60)
    r = store.acquire_round([], {"default": 1}, "h1", now=now - 5, lease=600,
                            ahead={"default": 3})
    assert [c.held for c in r.claims] == [False, True, True, True]
    return [r.claims[0].id], [c.id for c in r.claims[1:]]


@pytest.fixture
def path(tmp_path: Path) -> str:
    p = str(tmp_path / "jobs.db")
    s = SqliteStore(p)
    held_store(s, clock.now())
    s.close()
    return p


def draw(store: Store, now: float, width: int = 100, height: int = 30) -> str:
    snap = take(store, now=now, settings=SETTINGS)
    out = io.StringIO()
    RichConsole(file=out, width=width, height=height).print(dashboard(snap, width, height))
    return out.getvalue()


# -- the console ------------------------------------------------------------------------------
def test_the_snapshot_counts_held_jobs_apart_and_lists_them_after_the_running(path: str
                                                                              ) -> None:
    store = SqliteStore(path, readonly=True)
    now = clock.now()
    snap = take(store, now=now, settings=SETTINGS)
    (q,) = snap.queues
    assert (q.queued, q.running, q.held, q.started, q.cap) == (2, 4, 3, 1, 4)
    assert (snap.running_total, snap.held_total) == (4, 3)
    assert [j.held for j in snap.running] == [False, True, True, True]
    assert snap.running[0].elapsed > 4 and all(j.elapsed == 0 for j in snap.running[1:])
    text = draw(store, now)
    assert "running 1 (+3 held)" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("default"))
    assert "1+3h/4" in row.split(), row
    held_rows = [ln for ln in text.splitlines() if " held " in f" {ln} " and "h1" in ln]
    assert len(held_rows) == 3, text  # "held" where the elapsed time would be
    assert queue_cells(q)[2] == "1+3h/4"
    assert "running 1 (+3 held)" in head_line(snap, False)


def test_a_store_without_held_jobs_draws_as_before(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "jobs.db"))
    now = clock.now()
    store.enqueue([job() for _ in range(2)], now=now)
    store.acquire_round([], {"default": 2}, "h1", now=now, lease=60)
    snap = take(store, now=now, settings=SETTINGS)
    assert snap.queues[0].held == 0 and queue_cells(snap.queues[0])[2] == "2/4"
    text = draw(store, now)
    assert "running 2" in text and "(+" not in text and " held" not in text


def test_the_jobs_list_puts_held_jobs_last_and_the_job_view_says_what_they_wait_for(
        path: str) -> None:
    store = SqliteStore(path, readonly=True)
    now = clock.now()
    got = page(store, "running")
    assert [r.held for r in got.rows] == [False, True, True, True]
    assert job_cells(got.rows[0], now)[4] != "held"
    assert all(job_cells(r, now)[4] == "held" for r in got.rows[1:])
    assert all(job_cells(r, now)[3] == "0/3" for r in got.rows[1:])  # not counted yet
    # Paging on from a held row's key finds the rest (their key is past every start).
    first = page(store, "running", limit=2)
    rest = page(store, "running", after=first.after)
    assert [r.id for r in first.rows + rest.rows] == [r.id for r in got.rows]
    held = store.get(got.rows[1].id)
    text = detail(held, got.rows[1].id, now=now).plain
    assert "held by h1, waiting for a free worker; attempt not counted yet" in text
    started = store.get(got.rows[0].id)
    assert "held by" not in detail(started, got.rows[0].id, now=now).plain


def test_the_console_shows_held_jobs(path: str) -> None:
    async def body(pilot: Any) -> None:
        c: Console = pilot.app
        assert "running 1 (+3 held)" in text_of(c, "#head")
        cells = [str(x) for x in c.queues.get_row_at(1)]
        assert "1+3h/4" in cells, cells
        await pilot.press("s", "s")
        assert c.state == "running"
        await until(pilot, lambda: len(c.rows) == 4, "the running list")
        ages = [str(c.jobs.get_row_at(i)[5]) for i in range(4)]
        assert ages[0] != "held" and ages[1:] == ["held"] * 3, ages
        c.jobs.focus()
        await pilot.press("down", "enter")
        await until(pilot, lambda: "waiting for a free worker" in text_of(c, "#job"),
                    "the held job's view")

    drive(Console(path, SETTINGS), body)


# -- explain ----------------------------------------------------------------------------------
def test_explain_says_a_held_job_waits_for_a_worker_of_its_holder(path: str) -> None:
    store = SqliteStore(path, readonly=True)
    now = clock.now()
    held = store.get(page(store, "running").rows[1].id)
    assert held is not None and held.held and held.attempts == 0
    said = reasons(held, Facts(holder_alive=True), now)
    assert said[0].startswith(f"job {held.id} is held by service h1 (claimed ahead of a free "
                              "worker there)")
    assert "starts when a worker there is free" in said[0]
    assert "attempt (1/3) is counted only then" in said[0]
    said = reasons(held, gather(store, held, SETTINGS, now), now)  # h1 is no live service
    assert "h1 is dead" in said[1] and "attempt unspent" in said[1]


def test_explain_says_how_much_of_a_taken_cap_is_held(path: str) -> None:
    store = SqliteStore(path, readonly=True)
    now = clock.now()
    queued = store.list_jobs(state="queued", limit=5)[-1]
    facts = gather(store, queued, SETTINGS, now)
    assert (facts.running_in_queue, facts.cap, facts.held_in_queue) == (4, 4, {"h1": 3})
    text = "\n".join(reasons(queued, facts, now))
    assert ("at its concurrency cap (4/4 taken: 1 running, 3 held: claimed ahead of a free "
            "worker (3 by h1), they start before it)") in text, text
    rec = JobRecord(9, "t:a", "default", [], {}, 0, JobState.QUEUED, 0, 3, 0.0)
    text = "\n".join(reasons(rec, Facts(servers=["h"], running_in_queue=4, cap=4), now))
    assert "(4/4 running)" in text  # none held: as before


# -- the CLI and the metrics ------------------------------------------------------------------
def test_ls_show_and_stats_mark_held_jobs(path: str) -> None:
    env = {"COLUMNS": "120"}
    r = run_cli("ls", "--store", path, env=env)
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and sum("running (held)" in ln for ln in lines) == 3, r.stdout
    assert sum(ln.split()[3:4] == ["running"] and "(held)" not in ln for ln in lines) == 1
    data = json.loads(run_cli("ls", "--json", "--store", path).stdout)
    running = [d for d in data if d["state"] == "running"]
    assert sorted(d["held"] for d in running) == [False, True, True, True]
    assert all(d["held"] is False for d in data if d["state"] == "queued")
    held_id = next(d["id"] for d in running if d["held"])
    shown = run_cli("show", str(held_id), "--store", path, env=env).stdout
    assert "running (held)" in shown and "waiting for a free worker" in shown
    one = json.loads(run_cli("show", str(held_id), "--json", "--store", path).stdout)
    assert one["state"] == "running" and one["held"] is True and one["attempts"] == 0
    stats = json.loads(run_cli("stats", "--json", "--store", path).stdout)["queues"]["default"]
    assert (stats["running"], stats["held"], stats["queued"]) == (1, 3, 2)
    table = run_cli("stats", "--store", path, env=env).stdout
    head, row = table.splitlines()[:2]
    cols = dict(zip(head.split(), row.split()))
    assert (cols["running"], cols["held"]) == ("1", "3"), table


def test_stats_and_metrics_count_held_jobs_apart(path: str) -> None:
    store = SqliteStore(path, readonly=True)
    q = queue_stats(store, now=clock.now())["default"]
    assert (q["running"], q["held"]) == (1, 3)
    (depth, *_rest) = _QueueCollector(path).collect()
    got = {tuple(s.labels.values()): s.value for s in depth.samples}
    assert got[("default", "running")] == 1 and got[("default", "held")] == 3


# -- PostgreSQL: the same reads (held rows made by hand until its rounds claim ahead) ---------
def test_the_postgres_dashboard_tells_held_jobs_apart() -> None:
    import psycopg

    from jobrun.store import open_store

    with fresh_store_url() as url:
        store = open_store(url)
        try:
            now = clock.now()
            store.enqueue([job() for _ in range(6)], now=now - 60)
            store.acquire_round([], {"default": 4}, "h1", now=now - 5, lease=600)
            running = [r.id for r in store.list_jobs(state="running", limit=10)]
            held = sorted(running)[1:]
            with psycopg.connect(url, autocommit=True) as conn:  # as a held claim leaves them
                conn.execute("UPDATE jobs SET started_at = NULL, attempts = 0 "
                             "WHERE id = ANY(%s)", [held])
            snap = take(store, now=now, settings=SETTINGS)
            (q,) = snap.queues
            assert (q.running, q.held, q.started) == (4, 3, 1)
            assert [j.held for j in snap.running] == [False, True, True, True]
            got = page(store, "running")
            assert [r.held for r in got.rows] == [False, True, True, True]
            first = page(store, "running", limit=2)
            rest = page(store, "running", after=first.after)
            assert [r.id for r in first.rows + rest.rows] == [r.id for r in got.rows]
            queued = store.list_jobs(state="queued", limit=5)[-1]
            facts = gather(store, queued, SETTINGS, now)
            assert facts.held_in_queue == {"h1": 3}
            stats = queue_stats(store, now=now)["default"]
            assert (stats["running"], stats["held"]) == (1, 3)
        finally:
            store.close()


def test_the_real_top_shows_held_jobs_in_a_terminal_and_once(path: str, tmp_path: Path
                                                             ) -> None:
    """`jobrun top --once` at 80x24, and the console in a real pseudo-terminal."""
    from test_console import in_a_pty, read_until

    r = run_cli("top", "--once", "--store", path, env={"COLUMNS": "80", "LINES": "24"})
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) <= 24 and all(len(ln) <= 80 for ln in lines)
    assert "running 1 (+3 held)" in r.stdout, r.stdout
    assert any(ln.startswith("default") and "1+3h" in ln for ln in lines), r.stdout
    assert sum(" held " in f"{ln} " for ln in lines) == 3, r.stdout
    proc, master = in_a_pty(tmp_path, path)
    out = bytearray()
    try:
        read_until(master, out, lambda b: b"(+3 held)" in b and b"1+3h/-" in b, "held counts")
        os.write(master, b"q")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
