"""A small Flask app that takes orders: `POST /orders`, `GET /orders/<id>`.

Each request opens its own `apsw.Connection` to the store file; `orders.place_order` writes
the order and enqueues its confirmation job in one `BEGIN IMMEDIATE` transaction.

    JOBRUN_CONFIG=jobrun.toml flask --app web run      # from this folder
"""

from __future__ import annotations

from typing import Any

import orders
from flask import Flask, g, request


def create_app() -> Flask:
    """The store is orders.app's: $JOBRUN_STORE, else `store` in $JOBRUN_CONFIG."""
    web = Flask(__name__)
    orders.init_db()

    def db() -> Any:
        if "db" not in g:
            g.db = orders.connect()
        return g.db

    @web.teardown_appcontext
    def close_db(_exc: BaseException | None) -> None:
        conn = g.pop("db", None)
        if conn is not None:
            conn.close()

    @web.post("/orders")
    def create_order() -> Any:
        data = request.get_json(force=True)
        try:
            order_id, job_id = orders.place_order(db(), str(data["customer"]),
                                                  list(data.get("lines", [])))
        except orders.OutOfStock as exc:
            return {"error": str(exc)}, 409
        return {"order_id": order_id, "job_id": job_id}, 201

    @web.get("/orders/<int:order_id>")
    def show_order(order_id: int) -> Any:
        row = db().execute("SELECT id, customer, confirm_job, confirmed_at FROM orders "
                           "WHERE id = ?", (order_id,)).fetchone()
        if row is None:
            return {"error": "no such order"}, 404
        return {"id": row[0], "customer": row[1], "confirm_job": row[2],
                "confirmed": row[3] is not None}

    return web
