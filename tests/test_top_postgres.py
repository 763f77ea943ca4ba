"""`jobrun top` on a PostgreSQL store: the same frame as on SQLite (queues, a dead job with
its error, services and the cron leader), read through the store contract and presence."""

from __future__ import annotations

import os

import pytest

import jobrun
from conftest import run_cli, wait_for
from jobrun.config import QueueConfig, Settings
from jobrun.presence import presence_for
from jobrun.store import open_store
from support.postgres import fresh_store_url


def _boom(path: str) -> None:
    raise OSError(f"disk full writing {path}")


@pytest.fixture
def served() -> object:
    """A PostgreSQL store served by this process: one job dead with its error."""
    with fresh_store_url() as url:
        app = jobrun.App(url)
        app.settings = Settings(queues={"default": QueueConfig("default", concurrency=3)})
        boom = app.task(max_attempts=1, name="top:boom")(_boom)
        app.start()
        try:
            job_id = boom.enqueue("/var/spool/x").id
            store = open_store(url, readonly=True)
            try:
                wait_for(lambda: (j := store.get(job_id)) is not None and j.state == "dead",
                         20, "the job to die")
                wait_for(lambda: presence_for(store).leader(), 20, "a cron leader")
            finally:
                store.close()
            yield url
        finally:
            app.stop()
            app.close()


def _check(out: str) -> None:
    assert "default" in out and "disk full writing /var/spool/x" in out, out
    assert str(os.getpid()) in out, out  # this process serves it: a live service
    assert "leader" in out, out


def test_top_once_on_postgres(served: str) -> None:
    r = run_cli("top", "--once", "--store", served, env={"COLUMNS": "120", "LINES": "40"})
    assert r.returncode == 0, r.stderr
    _check(r.stdout)


def test_top_once_on_postgres_through_the_environment(served: str) -> None:
    r = run_cli("top", "--once", env={"JOBRUN_STORE": served, "COLUMNS": "120", "LINES": "40"})
    assert r.returncode == 0, r.stderr
    _check(r.stdout)
