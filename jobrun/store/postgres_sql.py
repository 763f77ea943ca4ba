"""The PostgreSQL store's named SQL (postgres.sql, postgres_workflows.sql, the schema and
its migrations) and the job insert every write path shares."""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from typing import Any, LiteralString

import psycopg

from ..errors import StoreError
from ..model import NewJob
from .queries import parse, read_sql

#: Named queries of postgres.sql and postgres_workflows.sql.
PQ: dict[str, str] = parse(read_sql("postgres.sql"))
PWQ: dict[str, str] = parse(read_sql("postgres_workflows.sql"))
#: Version N's script takes a store from N-1 to N (the schema_version table says where it is).
STEPS: dict[int, str] = {1: read_sql("postgres_schema.sql")}
STEPS.update({int(k[1:]): v for k, v in parse(read_sql("postgres_migrations.sql")).items()})
SCHEMA_VERSION = max(STEPS)


def sql(text: str) -> LiteralString:
    """Our named SQL (read from the package's files, never built from input) as psycopg
    wants a query typed."""
    return text  # mypy reads LiteralString as str; other checkers may want a cast


def redact(location: str) -> str:
    """The location without its password (before the @, or a `password=` parameter), for
    messages."""
    hidden = re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", location)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", hidden, flags=re.IGNORECASE)


def wrap(exc: psycopg.Error, where: str) -> StoreError:
    """A psycopg error as the one-line StoreError callers expect (as files.wrap on SQLite)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, psycopg.OperationalError):
        return StoreError(f"store {where}: cannot use the PostgreSQL server: {text}")
    return StoreError(f"store {where}: {text}")


def insert(conn: psycopg.Connection[Any], jobs: list[NewJob], now: float) -> list[int]:
    """Insert jobs in the caller's transaction; a key an unfinished job of its task holds
    gives that job's id (the key's enqueues are serialized by bucketed advisory locks). The
    services' doorbells ring when that transaction commits (the inserts notify)."""
    params = [_job_params(j, now) for j in jobs]
    if len(jobs) > 1 and all(j.key is None for j in jobs):
        columns = {c: [p[c] for p in params] for c in _BATCH}
        found = conn.execute(sql(PQ["insert_jobs"]), {**columns, "now": now}).fetchall()
        return sorted(r[0] for r in found)  # identity ids follow the rows' order
    keyed = [j for j in jobs if j.key is not None]
    if keyed:
        conn.execute(sql(PQ["key_locks"]), {"tasks": [j.task for j in keyed],
                                            "keys": [j.key for j in keyed]})
    ids: list[int] = []
    for j, p in zip(jobs, params):
        for _ in range(5):  # a held key may finish between the insert and the look-up
            row = conn.execute(sql(PQ["insert_job"]), p).fetchone()
            if row is None:
                row = conn.execute(sql(PQ["find_active_key"]),
                                   {"task": j.task, "key": j.key}).fetchone()
            if row is not None:
                ids.append(int(row[0]))
                break
        else:
            raise StoreError(f"could not enqueue {j.task} with key {j.key!r}")
    return ids


_BATCH = ("task", "queue", "args", "kwargs", "priority", "state", "max_attempts", "run_at",
          "trace_id", "timeout", "options", "ckey")


def _job_params(j: NewJob, now: float) -> dict[str, Any]:
    return {"task": j.task, "queue": j.queue, "args": j.args, "kwargs": j.kwargs,
            "priority": j.priority, "state": "scheduled" if j.scheduled else "queued",
            "max_attempts": j.max_attempts, "run_at": j.run_at, "key": j.key, "now": now,
            "trace_id": j.trace_id, "timeout": j.timeout, "options": j.options,
            "ckey": j.concurrency_key}


#: What each caller's connection reached (store_identity), asked once per connection.
_reached: weakref.WeakKeyDictionary[psycopg.Connection[Any], tuple[str, ...]] = \
    weakref.WeakKeyDictionary()


def identity(conn: psycopg.Connection[Any]) -> tuple[str, ...]:
    """Server (port, start time), database and schema `conn` reaches."""
    row = conn.execute(sql(PQ["store_identity"])).fetchone()
    assert row is not None
    return tuple(str(v) for v in row)


def in_caller(connection: Any, where: str, ours: Callable[[bool], tuple[str, ...]]
              ) -> psycopg.Connection[Any]:
    """The caller's psycopg connection, refused unless a transaction is open on it and it
    reaches this store (`ours(fresh)`: the store's identity, read again when `fresh`, as
    after a server restart); a refusal writes nothing and leaves the transaction usable."""
    if not isinstance(connection, psycopg.Connection):
        raise StoreError("connection= must be a psycopg connection on a PostgreSQL store")
    if connection.info.transaction_status != psycopg.pq.TransactionStatus.INTRANS:
        raise StoreError("connection= must be inside an open transaction (BEGIN ...)")
    theirs = _reached.get(connection)
    if theirs is None:
        try:
            theirs = _reached[connection] = identity(connection)
        except psycopg.Error as exc:
            raise wrap(exc, where) from exc
    if theirs != ours(False) and theirs != ours(True):
        mine = ours(False)
        raise StoreError(
            f"connection= reaches database {theirs[2]!r} schema {theirs[3]!r} (server port "
            f"{theirs[0]}), not the store {where} (database {mine[2]!r} schema {mine[3]!r}, "
            f"port {mine[0]}): nothing was written; use a connection to the store's own "
            f"database and schema")
    return connection
