"""The shop's own tables and its jobs, in the same SQLite file as the job store.

`place_order()` writes an order and enqueues its confirmation job in ONE transaction of the
caller's `apsw.Connection`: `app.enqueue(..., connection=conn)` (here through
`task.options(connection=conn)`) writes the job row inside the open `BEGIN IMMEDIATE`. If
anything later in the transaction fails, the rollback takes the order and the job with it;
if it commits, both exist. No outbox table, no "job for an order that was never saved", no
"order whose email was never queued".

This module has no web framework in it: the service (`jobrun start`) imports it to run
`confirm_order`; `web.py` (Flask) imports it to take orders.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import apsw

import jobrun

app = jobrun.App()

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id           INTEGER PRIMARY KEY,
    customer     TEXT NOT NULL,
    created_at   REAL NOT NULL,
    confirm_job  INTEGER,
    confirmed_at REAL
);
CREATE TABLE IF NOT EXISTS order_lines (
    order_id INTEGER NOT NULL REFERENCES orders(id),
    sku      TEXT NOT NULL,
    qty      INTEGER NOT NULL CHECK (qty > 0)
);
CREATE TABLE IF NOT EXISTS stock (
    sku       TEXT PRIMARY KEY,
    available INTEGER NOT NULL CHECK (available >= 0)
);
"""


class OutOfStock(Exception):
    pass


def init_db() -> None:
    """Once at start-up: the job store (jobrun's tables, WAL mode), then the shop's tables.

    jobrun must create its store before any transaction of yours is open on the file: it
    cannot do that from inside your `BEGIN IMMEDIATE`."""
    _ = app.store  # opens (creates, migrates) the job store
    conn = connect()
    try:
        conn.execute(SCHEMA)
    finally:
        conn.close()


def connect() -> apsw.Connection:
    """A connection of your own to the store file (for a request, a script, a job)."""
    conn = apsw.Connection(app.store_path)
    conn.set_busy_timeout(5000)
    return conn


def add_stock(sku: str, qty: int) -> None:
    conn = connect()
    try:
        conn.execute("INSERT INTO stock VALUES (?, ?) ON CONFLICT (sku) DO UPDATE "
                     "SET available = available + excluded.available", (sku, qty))
    finally:
        conn.close()


@contextlib.contextmanager
def transaction(conn: apsw.Connection) -> Iterator[apsw.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK if the block raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def place_order(conn: apsw.Connection, customer: str, lines: list[dict[str, Any]]
                ) -> tuple[int, int]:
    """The order, its confirmation job and its stock reservations: all or nothing.

    Returns (order id, job id). Raises OutOfStock (and stores nothing) if a line cannot be
    reserved, even though the job was already enqueued in the transaction by then."""
    with transaction(conn):
        order_id = conn.execute(
            "INSERT INTO orders (customer, created_at) VALUES (?, ?) RETURNING id",
            (customer, time.time())).get
        job = confirm_order.options(connection=conn).enqueue(order_id)
        conn.execute("UPDATE orders SET confirm_job = ? WHERE id = ?", (job.id, order_id))
        for line in lines:
            sku, qty = str(line["sku"]), int(line["qty"])
            conn.execute("INSERT INTO order_lines VALUES (?, ?, ?)", (order_id, sku, qty))
            conn.execute("UPDATE stock SET available = available - ? "
                         "WHERE sku = ? AND available >= ?", (qty, sku, qty))
            if conn.changes() == 0:
                raise OutOfStock(f"not enough {sku} for {qty}")
    return order_id, job.id


@app.task(queue="orders")
def confirm_order(order_id: int) -> str:
    """Runs only after the order committed: the row is always there."""
    conn = connect()
    try:
        with transaction(conn):
            row = conn.execute("SELECT customer FROM orders WHERE id = ?",
                               (order_id,)).fetchone()
            if row is None:  # cannot happen: the job exists only if the order does
                raise jobrun.Permanent(f"order {order_id} does not exist")
            conn.execute("UPDATE orders SET confirmed_at = ? WHERE id = ?",
                         (time.time(), order_id))
    finally:
        conn.close()
    # Send the confirmation email here (see recipes/email_once for sending it once).
    return f"order {order_id} confirmed for {row[0]}"
