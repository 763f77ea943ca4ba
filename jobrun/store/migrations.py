"""Schema versions, moved forward on open; a newer file is refused untouched."""

from __future__ import annotations

import apsw

from ..errors import StoreError
from .queries import SCHEMA, parse, read_sql

#: Version N's script takes a store from N-1 to N.
STEPS: dict[int, str] = {1: SCHEMA}
STEPS.update({int(k[1:]): v for k, v in parse(read_sql("migrations.sql")).items()})
SCHEMA_VERSION = max(STEPS)


def migrate(conn: apsw.Connection, path: str) -> int:
    """Bring the store to SCHEMA_VERSION in one transaction; returns the version found.

    A current store takes no write lock: opening one inside another connection's open
    transaction (enqueue with `connection=`) must not wait on that transaction."""
    found = int(conn.execute("PRAGMA user_version").get)
    if found == SCHEMA_VERSION:
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = migrate_in(conn, path)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return found


def migrate_in(conn: apsw.Connection, path: str) -> int:
    """Bring the store to SCHEMA_VERSION inside the caller's open transaction; returns the
    version found. A newer store is refused (and left as it was)."""
    found = int(conn.execute("PRAGMA user_version").get)
    if found > SCHEMA_VERSION:
        raise StoreError(f"store {path} has schema version {found}, newer than this jobrun "
                         f"knows ({SCHEMA_VERSION}): upgrade jobrun; the file was not touched")
    for version in range(found + 1, SCHEMA_VERSION + 1):
        conn.execute(STEPS[version])
    if found < SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return found
