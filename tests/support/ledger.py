"""A task's own connection to the store file (not jobrun's), one per worker thread, for the
`ledger` tables the crash and storm tests count executions in."""

from __future__ import annotations

import os
import threading

import apsw

_local = threading.local()


def ledger_conn() -> apsw.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = apsw.Connection(os.environ["JOBRUN_STORE"])
        conn.set_busy_timeout(30_000)
        _local.conn = conn
    return conn
