"""The presence contract on both stores: a service's liveness seen by another handle of the
store, cron leadership one at a time, the doorbell rung by a producer's commit. Then what
only PostgreSQL must show: a lock lost with its connection is seen at once and taken back,
a rolled-back `connection=` enqueue rings nobody, and a forked child never keeps a dead
service's locks alive."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobrun
from jobrun.presence import presence_for
from jobrun.store import open_store
from jobrun.store.contract import Store
from support.postgres import fresh_store_url, terminate_backends_of
from support.wait import wait_for

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgres":
        with fresh_store_url() as url:
            yield url
        return
    yield os.path.realpath(tmp_path / "jobs.db")


@pytest.fixture
def pg() -> Iterator[str]:
    with fresh_store_url() as url:
        yield url


@pytest.fixture
def stores(location: str) -> Iterator[tuple[Store, Store]]:
    a, b = open_store(location), open_store(location)
    yield a, b
    a.close()
    b.close()


def test_a_holders_liveness_and_what_it_published_are_seen_by_another_handle(
        stores: tuple[Store, Store]) -> None:
    a, b = stores
    mine, theirs = presence_for(a), presence_for(b)
    live = mine.liveness("h-1", {"queues": {"mail": 3}})
    assert not theirs.alive("h-1")
    assert live.acquire() and live.keep()
    assert theirs.alive("h-1") and "h-1" in theirs.holders()
    assert theirs.live_queues() == {"mail": ["h-1"]}
    live.publish({"queues": {"mail": 3, "pdf": 1}})
    assert theirs.info("h-1")["queues"] == {"mail": 3, "pdf": 1}
    theirs.sweep("h-2")
    assert theirs.alive("h-1"), "a sweep forgot a live holder"
    live.release()
    assert not theirs.alive("h-1")
    theirs.sweep("h-2")
    assert "h-1" not in theirs.holders()


def test_one_cron_leader_at_a_time_and_who_it_is(stores: tuple[Store, Store]) -> None:
    a, b = stores
    first, second = presence_for(a).leadership(), presence_for(b).leadership()
    assert presence_for(b).leader() is None
    assert first.acquire("h-1") and first.held
    assert not second.acquire("h-2") and not second.held
    assert presence_for(b).leader() == "h-1"
    first.release()
    assert not first.held and presence_for(b).leader() is None
    assert second.acquire("h-2") and presence_for(a).leader() == "h-2"
    second.release()


def test_a_producers_commit_rings_the_doorbell(location: str) -> None:
    store = open_store(location)
    bell = presence_for(store).bell("h-1")
    live = presence_for(store).liveness("h-1")  # a file doorbell rings live holders only
    live.acquire()
    app = jobrun.App(location)
    try:
        bell.wait(0)  # nothing rung yet
        app.enqueue("x:t")
        assert wait_for(lambda: bell.wait(0.2), 10, "the doorbell to ring")
        bell.wake()
        assert not bell.wait(5), "a wake from our own threads is not a producer's ring"
    finally:
        app.close()
        bell.close()
        live.release()
        store.close()


def test_postgres_a_liveness_lost_with_its_connection_is_seen_and_taken_back(
        pg: str) -> None:
    a, b = open_store(pg), open_store(pg)
    try:
        live, leader = presence_for(a).liveness("h-1"), presence_for(a).leadership()
        assert live.acquire() and leader.acquire("h-1")
        assert terminate_backends_of(os.getpid()) >= 2  # every connection of this process
        assert not presence_for(b).alive("h-1")  # at once: no lease to wait out
        assert not leader.held
        assert presence_for(b).leadership().acquire("h-2")
        assert live.keep() and presence_for(b).alive("h-1")
    finally:
        a.close()
        b.close()


def test_postgres_a_rolled_back_enqueue_rings_nobody_a_committed_one_does(pg: str) -> None:
    import psycopg

    store = open_store(pg)
    bell = presence_for(store).bell("h-1")
    app = jobrun.App(pg)
    try:
        with psycopg.connect(pg) as conn:
            with conn.transaction(force_rollback=True):
                app.enqueue("x:t", connection=conn)
            assert not bell.wait(1.0), "a rolled-back enqueue rang"
            with conn.transaction():
                app.enqueue("x:t", connection=conn)
                assert not bell.wait(0.5), "rang before the commit"
        assert wait_for(lambda: bell.wait(0.2), 10, "the committed enqueue to ring")
        assert len(store.list_jobs()) == 1
    finally:
        app.close()
        bell.close()
        store.close()


def test_postgres_a_forked_child_does_not_keep_a_dead_services_locks(pg: str) -> None:
    """The service takes its liveness and leadership, a task forks a child that lingers,
    the service dies: its sessions end with it although the child keeps running."""
    code = ("import os, signal, sys, time; from jobrun.store import open_store; "
            "from jobrun.presence import presence_for; "
            f"s = open_store({pg!r}); p = presence_for(s); "
            "assert p.liveness('h-1').acquire() and p.leadership().acquire('h-1'); "
            "child = os.fork()\n"
            "if child == 0:\n    time.sleep(60); os._exit(0)\n"
            "print(child, flush=True); sys.stdin.readline(); os.kill(os.getpid(), 9)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None and proc.stdin is not None
    child = int(proc.stdout.readline())
    store = open_store(pg)
    try:
        presence = presence_for(store)
        assert presence.alive("h-1") and presence.leader() == "h-1"
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(10)
        os.kill(child, 0)  # still running
        wait_for(lambda: not presence.alive("h-1"), 10, "the dead service's liveness to go")
        wait_for(lambda: presence.leader() is None, 10, "the dead service's leader lock to go")
    finally:
        os.kill(child, 9)
        store.close()
