"""A PostgreSQL store of its own per test: a fresh schema in the server's `test` database
(127.0.0.1:5432, or $JOBRUN_TEST_PG), dropped afterwards. Without a server the PostgreSQL
cases skip, saying how to run them; with $CI set they fail instead (CI must run them)."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

#: The server the tests use (a database they may create schemas in).
SERVER = os.environ.get("JOBRUN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

HOW = ("PostgreSQL tests skipped: no server at {server} ({why}). To run them: start "
       "PostgreSQL there (trust auth, a database 'test'), or set JOBRUN_TEST_PG to a URL of "
       "a database you may create schemas in, and pip install -e '.[postgres]'")

_reachable: tuple[bool, str] | None = None
_warned = False


class PostgresSkipped(UserWarning):
    """The PostgreSQL tests did not run: no server."""


def _probe() -> tuple[bool, str]:
    global _reachable
    if _reachable is None:
        try:
            import psycopg
        except ImportError:
            _reachable = (False, "psycopg is not installed")
        else:
            try:
                with psycopg.connect(SERVER, connect_timeout=3) as conn:
                    conn.execute("SELECT 1")
                _reachable = (True, "")
            except psycopg.Error as exc:
                _reachable = (False, str(exc).strip().splitlines()[0] if str(exc) else "error")
    return _reachable


def require_server() -> None:
    """Skip (or, with $CI set, fail) when the server cannot be reached."""
    ok, why = _probe()
    if not ok:
        message = HOW.format(server=SERVER, why=why)
        if os.environ.get("CI"):
            pytest.fail(message + " [CI is set: the PostgreSQL tests must run]")
        global _warned
        if not _warned:  # once, in the run's warnings summary (a skip's reason needs -rs)
            _warned = True
            warnings.warn(message, PostgresSkipped, stacklevel=2)
        pytest.skip(message)


@contextmanager
def fresh_store_url() -> Iterator[str]:
    """A URL naming a new, empty schema; the schema is dropped afterwards."""
    require_server()
    import psycopg

    schema = "jobrun_t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in SERVER else "?"
    try:
        yield f"{SERVER}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def client_ports(pid: int) -> set[int]:
    """The local TCP ports of process `pid`'s sockets (its connections' client ports), read
    from /proc: how a test finds a service's backends to cut it off."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}", encoding="ascii") as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[9] in inodes:
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


def terminate_backends_of(pid: int) -> int:
    """Cut process `pid` off the server: end every backend serving one of its connections
    (pg_terminate_backend), as a host whose network died. How many were ended."""
    import psycopg

    ports = sorted(client_ports(pid))
    with psycopg.connect(SERVER, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE client_port = ANY(%s) AND pid <> pg_backend_pid()",
                            (ports,)).fetchall()
    return sum(1 for (ok,) in rows if ok)


@contextmanager
def any_store(kind: str, folder: str) -> Iterator[str]:
    """A store location of `kind`: "sqlite" (a file in `folder`) or "postgres" (a fresh
    schema, dropped afterwards), for tests that run on both stores."""
    if kind == "postgres":
        with fresh_store_url() as url:
            yield url
        return
    yield os.path.join(folder, "jobs.db")
