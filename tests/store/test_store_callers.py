"""What issue 16's stranger found in the PostgreSQL store: a `connection=` to another
database or schema (or, on SQLite, another file) is refused with nothing written and the
caller's transaction still usable; a keyed batch of any size enqueues in one call."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

from conftest import run_cli
from jobrun.errors import StoreError
from jobrun.store import open_store
from jobrun.store.contract import Store
from support.postgres import SERVER, fresh_store_url, require_server

T0 = 1_000_000.0


def _job(task: str = "t:a", key: str | None = None) -> object:
    from jobrun import catalog, enqueue
    from jobrun.config import Settings
    d = catalog.resolve(None, None, None, Settings(), "default")
    return enqueue.new_job(task, [1], {}, {"key": key}, T0, d)


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_store_url() as u:
        yield u


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    s = open_store(url)
    yield s
    s.close()


@pytest.fixture
def other_database() -> Iterator[str]:
    """A database of its own on the same server, created and dropped."""
    require_server()
    import psycopg
    name = "jobrun_t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield SERVER.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _refuses(store: Store, conn: object, where: str) -> None:
    """Both writes through `conn` are refused, naming the store, with nothing written."""
    with pytest.raises(StoreError, match=f"{where}not the store .*nothing was written"):
        store.enqueue([_job()], connection=conn, now=T0)  # type: ignore[list-item]
    with pytest.raises(StoreError, match=f"{where}not the store"):
        store.send_event("e", "1", connection=conn, now=T0)


def _refused_and_usable(store: Store, elsewhere: str, table_there: bool) -> None:
    """connection= on `elsewhere` is refused; the caller's transaction goes on and commits."""
    import psycopg
    with psycopg.connect(elsewhere) as conn:
        with conn.transaction():
            conn.execute("CREATE TABLE orders (id int)")
            conn.execute("INSERT INTO orders VALUES (1)")
            _refuses(store, conn, "")
            conn.execute("INSERT INTO orders VALUES (2)")  # not aborted by us
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (2,)
        if table_there:
            assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
    assert store.counts() == {}


def test_a_connection_to_another_schema_is_refused(store: Store) -> None:
    with fresh_store_url() as bare:  # no jobrun schema there
        _refused_and_usable(store, bare, table_there=False)
    with fresh_store_url() as other:  # another jobrun store
        open_store(other).close()
        _refused_and_usable(store, other, table_there=True)


def test_a_connection_to_another_database_is_refused(store: Store, other_database: str
                                                     ) -> None:
    _refused_and_usable(store, other_database, table_there=False)


def test_a_connection_to_the_store_itself_is_taken(store: Store, url: str) -> None:
    import psycopg
    with psycopg.connect(url) as conn, conn.transaction():
        (job_id,) = store.enqueue([_job()], connection=conn, now=T0)  # type: ignore[list-item]
    assert store.get(job_id) is not None


def test_twenty_thousand_keyed_jobs_enqueue_in_one_call(store: Store) -> None:
    jobs = [_job(key=f"k{i}") for i in range(20_000)]
    ids = store.enqueue(jobs + [_job(key="k7")], now=T0)  # type: ignore[arg-type]
    assert len(set(ids)) == 20_000 and ids[-1] == ids[7]  # a repeated key: the same job
    assert store.counts() == {"queued": 20_000}


def test_a_sqlite_connection_to_another_file_is_refused(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "jobs.db"))
    other = apsw.Connection(str(tmp_path / "other.db"))
    other.execute("CREATE TABLE orders (id INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO orders VALUES (1)")
    _refuses(store, other, "other.db.*")
    other.execute("COMMIT")
    tables = [r[0] for r in other.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert tables == ["orders"]  # no jobrun schema written into the other file
    assert store.counts() == {}
    store.close()


def test_a_start_is_never_stamped_before_its_enqueue(store: Store) -> None:
    (job_id,) = store.enqueue([_job()], now=T0 + 0.010)  # type: ignore[list-item]
    store.acquire_round([], {"default": 1}, "h", now=T0, lease=30)  # a round's older now
    record = store.get(job_id)
    assert record is not None and record.started_at == record.enqueued_at == T0 + 0.010


@pytest.mark.parametrize("command", [["stats"], ["ls"], ["pause", "default"], ["start"]])
def test_a_server_down_is_one_line_without_the_pools_retries(command: list[str],
                                                             tmp_path: Path) -> None:
    down = "postgresql://postgres@127.0.0.1:5999/db"  # nothing listens there
    out = run_cli(*command, "--store", down, cwd=str(tmp_path))
    assert out.returncode == 1, out.stdout + out.stderr
    (line,) = out.stderr.strip().splitlines()  # no pool "error connecting" lines
    assert line.startswith(f"jobrun: store {down}: could not connect to the PostgreSQL server (")
    assert "port 5999" in line and "refused" in line


def test_the_readmes_psycopg_example_enqueues_in_the_callers_transaction(url: str) -> None:
    import re

    import psycopg

    import jobrun
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```py\n# psycopg\n(.*?)\n\n", readme, re.S)
    app = jobrun.App(url)

    @app.task
    def ship(order: int) -> None: ...

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int)")
    exec(block, {"psycopg": psycopg, "URL": url, "ship": ship})
    assert app.store.counts() == {"queued": 1}
    app.close()
