"""`jobrun store copy SRC DST`: every row of one store into another (SQLite -> PostgreSQL and
back): jobs in every state with their error histories, cron fires, events, workflow steps
and children, paused queues, `once()` records, rate buckets, the catalog.

One transaction on the target, which must be empty, holding its write lock from the check
to the commit: a copy never merges, and a second copy racing in finds it not empty. Ids are kept, and
a PostgreSQL target's identities move past every id the source handed out (never reused).
Events go first: their insert trigger wakes waiting steps, and with no steps copied yet it
touches nothing, so every row arrives as it was. Presence rows (who serves, who leads) are
not copied: they belong to the services of the source.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol, cast

from ..errors import StoreError
from . import is_postgres
from .contract import Store
from .queries import parse, read_sql

CQ: dict[str, str] = parse(read_sql("copy.sql"))

#: Each table and its columns, in the order they are copied (the same on both stores:
#: tests/test_store_copy.py checks that no column of either store is left out).
TABLES: dict[str, tuple[str, ...]] = {
    "events": ("id", "name", "payload", "sent_at", "taken_by", "taken_seq"),
    "jobs": ("id", "task", "queue", "args", "kwargs", "priority", "state", "attempts",
             "max_attempts", "run_at", "key", "result", "errors", "enqueued_at", "started_at",
             "finished_at", "holder", "token", "lease_until", "trace_id", "timeout", "options",
             "ckey", "parent", "fanin"),
    "steps": ("job_id", "seq", "name", "kind", "state", "result", "error", "attempts",
              "started", "finished", "waits", "until"),
    "cron_fires": ("entry", "fire_at", "job_id"),
    "queues": ("name", "paused", "concurrency"),
    "processed_operations": ("key", "job_id", "done_at", "state", "owner"),
    "rate_buckets": ("name", "tokens", "at"),
    "catalog": ("task", "holder", "options", "seen_at"),
    "meta": ("name", "value"),
}
WITH_IDS = ("events", "jobs")
PRESENCE = ("holder:", "leader")  # meta rows of the source's services, not copied


class _Raw(Protocol):
    """What both stores offer beside the contract: named reads and one write transaction."""

    path: str

    def read(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]: ...

    def write(self) -> contextlib.AbstractContextManager[Any]: ...


def _q(name: str, **parts: str) -> str:
    return CQ[name].format(**parts)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cols(table: str) -> str:
    return ", ".join(_quoted(c) for c in TABLES[table])


def copy_store(src: Store, dst: Store) -> dict[str, int]:
    """Copy every row of `src` into the empty store `dst`; the rows copied per table.

    The check that `dst` is empty and the copy are one transaction holding the target's
    write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock of the target's
    schema), so of two copies racing into one target the second waits, then finds it not
    empty and says so; a copy that fails leaves the target's rows as they were."""
    if src.path == dst.path:
        raise StoreError(f"store copy: {_shown(src)} is both the source and the target")
    pg = is_postgres(dst.path)
    source, target = cast(_Raw, src), cast(_Raw, dst)
    copied: dict[str, int] = {}
    with target.write() as conn:
        if pg:
            conn.execute(_q("lock_target"))
        held = _held(conn, pg)
        if held:
            raise StoreError(f"store copy: the target {_shown(dst)} is not empty ({held}); "
                             "copy into a new store")
        conn.execute(_q("meta_clear"))
        for table in TABLES:
            rows = source.read(_q("rows", table=_quoted(table), columns=_cols(table)),
                               {} if is_postgres(src.path) else None)
            if table == "meta":
                rows = [r for r in rows if not str(r[0]).startswith(PRESENCE)]
            marks = ", ".join(["%s" if pg else "?"] * len(TABLES[table]))
            put = _q("put_postgres" if pg else "put_sqlite", table=_quoted(table),
                     columns=_cols(table), marks=marks)
            _many(conn, put, [tuple(r) for r in rows], pg)
            copied[table] = len(rows)
        if pg:
            for table in WITH_IDS:
                conn.execute(_q("move_sequence", table=_quoted(table), table_text=f"'{table}'"),
                             {"last": _last_id(source, table)})
    return copied


def _held(conn: Any, pg: bool) -> str:
    """What the target holds already, jobs first ("3 jobs, 1 events"); "" when empty (its
    meta rows are what it wrote about itself on creation)."""
    counts = {}
    for table in ("jobs", *(t for t in TABLES if t not in ("jobs", "meta"))):
        (n,), = _all(conn, _q("count", table=_quoted(table)), pg)
        if n:
            counts[table] = n
    return ", ".join(f"{n} {t}" for t, n in counts.items())


def _last_id(store: _Raw, table: str) -> int:
    """The highest id a PostgreSQL `store` ever handed out in `table`, pruned rows included
    (a SQLite store's are its rows' own: copied, they count on the target)."""
    if not is_postgres(store.path):
        return 0
    seq = store.read(_q("sequence_of", table_text=f"'{table}'"), {})[0][0]
    return int(store.read(_q("last_id_postgres", sequence=seq), {})[0][0])


def _all(conn: Any, query: str, pg: bool) -> list[Any]:
    cur = conn.execute(query, {} if pg else None)
    return list(cur.fetchall() if pg else cur)


def _many(conn: Any, query: str, rows: list[tuple[Any, ...]], pg: bool) -> None:
    if not rows:
        return
    if pg:
        with conn.cursor() as cur:
            cur.executemany(query, rows)
    else:
        conn.executemany(query, rows)


def _shown(store: Store) -> str:
    return str(getattr(store, "shown", store.path))
