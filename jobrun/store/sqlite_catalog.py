"""The task catalog on SQLite: which services run which tasks (see catalog.py), and the
jobs of tasks nobody runs. Mixed into SqliteStore."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import apsw

from ..model import Declaration, error_entry
from .queries import Q
from .rows import declarations


class CatalogActions:
    """The catalog half of the store contract, over a store's `read` and `write`."""

    def read(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def write(self, conn: apsw.Connection | None = None
              ) -> contextlib.AbstractContextManager[apsw.Connection]:
        raise NotImplementedError

    def publish_catalog(self, holder: str, entries: dict[str, str], *, now: float) -> None:
        """Say which tasks `holder` runs (task -> JSON of its effective options), replacing
        what it said before; the first declaration ever is remembered (`catalog_born`)."""
        with self.write() as conn:
            conn.execute(Q["catalog_forget_holder"], {"holder": holder})
            conn.executemany(Q["catalog_put"], [
                {"task": t, "holder": holder, "options": o, "now": now}
                for t, o in entries.items()])
            conn.execute(Q["meta_init"], {"name": "catalog_born", "value": repr(now)})
            # The durability producers of this store should honour (they may lack the config).
            conn.execute(Q["meta_put"], {"name": "durability",
                                         "value": getattr(self, "durability", "normal")})

    def touch_catalog(self, holder: str, *, now: float) -> None:
        """A clean stop: `holder` ran its tasks until `now` (they stay recent from here)."""
        with self.write() as conn:
            conn.execute(Q["catalog_touch"], {"holder": holder, "now": now})

    def forget_catalog(self, holder: str, *, before: float) -> None:
        """Drop a dead holder's declarations older than `before`."""
        with self.write() as conn:
            conn.execute(Q["catalog_forget_old"], {"holder": holder, "before": before})

    def catalog(self) -> list[Declaration]:
        """Every declaration, newest first per task."""
        return declarations(self.read(Q["catalog_all"]))

    def catalog_born(self) -> float | None:
        """When a service first declared tasks in this store (None: never)."""
        rows = self.read(Q["meta_get"], {"name": "catalog_born"})
        try:
            return float(rows[0][0]) if rows else None
        except (TypeError, ValueError):
            return None

    def queued_pairs(self) -> list[tuple[str, str]]:
        """Every (queue, task) with queued jobs: one index seek each."""
        out: list[tuple[str, str]] = []
        queue, task = "", ""
        while True:
            rows = self.read(Q["queued_pair_after"], {"queue": queue, "task": task})
            if not rows:
                return out
            queue, task = rows[0]
            out.append((queue, task))

    def dead_unknown(self, queue: str, task: str, message: str, *, now: float,
                     limit: int = 500) -> list[int]:
        """Queued jobs of a task nobody runs go dead (UnknownTask), a batch at a time."""
        error = json.dumps(error_entry("UnknownTask", message, None, now))
        with self.write() as conn:
            return [r[0] for r in conn.execute(Q["dead_unknown"], {
                "queue": queue, "task": task, "now": now, "error": error, "limit": limit})]


def catalog_readers(connection: apsw.Connection) -> tuple[
        Callable[[], list[Declaration]], Callable[[], float | None]]:
    """The catalog read through a caller's connection (a store that may not be set up yet:
    no catalog then)."""
    def read() -> list[Declaration]:
        try:
            return declarations(list(connection.execute(Q["catalog_all"])))
        except apsw.SQLError:
            return []

    def born() -> float | None:
        try:
            rows = list(connection.execute(Q["meta_get"], {"name": "catalog_born"}))
            return float(rows[0][0]) if rows else None
        except (apsw.SQLError, TypeError, ValueError):
            return None
    return read, born
