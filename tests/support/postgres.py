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
