"""The catalog and the operators' reads and actions on PostgreSQL (postgres.sql), mixed into
PostgresStore over its `read` and `write`: the same meaning as sqlite_catalog.py and
operator.py."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import psycopg

from ..model import Declaration, JobRecord, error_entry
from .contract import Status
from .postgres_sql import PQ, PWQ, identity, in_caller, sql
from .rows import declarations, row_to_record


class PgBase:
    """What the mixins use of the store."""

    path: str
    shown: str  # the location without its password, for messages

    def read(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def write(self) -> contextlib.AbstractContextManager[psycopg.Connection[Any]]:
        raise NotImplementedError

    def caller(self, connection: Any) -> psycopg.Connection[Any]:
        """The caller's connection (connection=), refused unless it reaches this store."""
        return in_caller(connection, self.shown, self._identity)

    def _identity(self, fresh: bool) -> tuple[str, ...]:
        known: tuple[str, ...] | None = getattr(self, "_known_identity", None)
        if known is None or fresh:
            with self.write() as conn:
                known = self._known_identity = identity(conn)
        return known


class PgCatalog(PgBase):
    """Which services run which tasks, and the jobs of tasks nobody runs."""

    def publish_catalog(self, holder: str, entries: dict[str, str], *, now: float) -> None:
        with self.write() as conn:
            conn.execute(sql(PQ["catalog_forget_holder"]), {"holder": holder})
            if entries:
                conn.cursor().executemany(sql(PQ["catalog_put"]), [
                    {"task": t, "holder": holder, "options": o, "now": now}
                    for t, o in entries.items()])
            conn.execute(sql(PQ["meta_init"]), {"name": "catalog_born", "value": repr(now)})

    def touch_catalog(self, holder: str, *, now: float) -> None:
        with self.write() as conn:
            conn.execute(sql(PQ["catalog_touch"]), {"holder": holder, "now": now})

    def forget_catalog(self, holder: str, *, before: float) -> None:
        with self.write() as conn:
            conn.execute(sql(PQ["catalog_forget_old"]), {"holder": holder, "before": before})

    def catalog(self) -> list[Declaration]:
        return declarations(self.read(PQ["catalog_all"]))

    def catalog_born(self) -> float | None:
        found = self.read(PQ["meta_get"], {"name": "catalog_born"})
        try:
            return float(found[0][0]) if found else None
        except (TypeError, ValueError):
            return None

    def queued_pairs(self) -> list[tuple[str, str]]:
        return [(q, t) for q, t in self.read(PQ["queued_pairs"])]

    def dead_unknown(self, queue: str, task: str, message: str, *, now: float,
                     limit: int = 500) -> list[int]:
        error = json.dumps(error_entry("UnknownTask", message, None, now))
        with self.write() as conn:
            return [r[0] for r in conn.execute(sql(PQ["dead_unknown"]), {
                "queue": queue, "task": task, "now": now, "error": error, "limit": limit})]


class PgOperator(PgBase):
    """Reads (lenient: a malformed row is shown as its raw text) and operator actions."""

    def get(self, job_id: int) -> JobRecord | None:
        found = self.read(PQ["get_job"], {"id": job_id})
        return row_to_record(found[0]) if found else None

    def status(self, job_id: int) -> Status | None:
        found = self.read(PQ["job_status"], {"id": job_id})
        return Status(*found[0]) if found else None

    def list_jobs(self, *, state: str | None = None, queue: str | None = None,
                  limit: int = 50) -> list[JobRecord]:
        found = self.read(PQ["list_jobs"], {"state": state, "queue": queue, "limit": limit})
        return [row_to_record(r) for r in found]

    def cancel(self, job_id: int, *, now: float) -> str | None:
        with self.write() as conn:
            row = conn.execute(sql(PQ["job_state"]), {"id": job_id}).fetchone()
            if row is None:
                return None
            if row[0] in ("scheduled", "queued", "retrying"):
                conn.execute(sql(PQ["cancel_waiting"]), {"id": job_id, "now": now})
            elif row[0] == "running":
                conn.execute(sql(PQ["cancel_running"]), {"id": job_id, "now": now})
            if row[0] in ("scheduled", "queued", "retrying", "running"):
                conn.execute(sql(PWQ["cancel_descendants"]), {"id": job_id, "now": now})
            return str(row[0])

    def retry(self, job_id: int | None, *, now: float) -> list[int]:
        with self.write() as conn:
            if job_id is None:
                ids = [r[0] for r in conn.execute(sql(PQ["retry_dead"]), {"now": now})]
            else:
                ids = [r[0] for r in conn.execute(sql(PQ["retry_job"]),
                                                  {"id": job_id, "now": now})]
            if ids:  # a workflow's dead or cancelled children go with it: a real chance
                ids += [r[0] for r in conn.execute(sql(PWQ["retry_children"]),
                                                   {"ids": ids, "now": now})]
                conn.execute(sql(PWQ["reopen_gathers"]), {"ids": ids})
                conn.execute(sql(PWQ["forget_failures"]), {"ids": ids})
            return ids

    def prune(self, before: float, states: tuple[str, ...] = ("succeeded", "cancelled", "dead"),
              *, batch: int = 500) -> int:
        """Delete finished jobs in short transactions of `batch` rows."""
        total = 0
        while True:
            with self.write() as conn:
                n = conn.execute(sql(PQ["prune_finished"]), {
                    "before": before, "states": list(states), "limit": batch}).rowcount
            total += n
            if n < batch:
                return total

    def prune_job(self, job_id: int) -> bool:
        with self.write() as conn:
            return conn.execute(sql(PQ["prune_job"]), {"id": job_id}).rowcount > 0

    def set_concurrency(self, queue: str, n: int | None) -> None:
        with self.write() as conn:
            conn.execute(sql(PQ["set_concurrency"]), {"name": queue, "n": n})

    def concurrency(self) -> dict[str, int]:
        return {str(q): int(n) for q, n in self.read(PQ["queue_concurrency"])}

    def set_paused(self, queue: str, paused: bool) -> None:
        with self.write() as conn:
            conn.execute(sql(PQ["set_paused"]), {"name": queue, "paused": int(paused)})

    def paused(self) -> frozenset[str]:
        return frozenset(r[0] for r in self.read(PQ["paused_queues"]))

    def queue_names(self) -> set[str]:
        names = {str(r[0]) for r in self.read(PQ["queue_names"])}
        for (options,) in self.read(PQ["catalog_options"]):
            try:
                queue = json.loads(options).get("queue")
            except (ValueError, AttributeError, RecursionError):
                continue
            if isinstance(queue, str):
                names.add(queue)
        return names

    def queue_counts(self, *, since: float) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for queue, state, n in self.read(PQ["queue_counts"]):
            out.setdefault(queue, {})[state] = n
        for queue, oldest in self.read(PQ["oldest_queued"]):
            out.setdefault(queue, {})["oldest_queued"] = oldest
        for queue, state, n in self.read(PQ["finished_since"], {"since": since}):
            out.setdefault(queue, {})[f"{state}_since"] = n
        return out

    def pending(self, horizon: float, tasks: frozenset[str] | None = None) -> int:
        return int(self.read(PQ["pending"], {"horizon": horizon})[0][0])

    def counts(self) -> dict[str, int]:
        return {str(s): int(n) for s, n in self.read(PQ["state_counts"])}

    def explain_facts(self, job_id: int, queue: str, priority: int) -> dict[str, Any]:
        found = self.read(PQ["explain_key"], {"id": job_id})
        ckey = found[0][0] if found else None
        return {
            "running_in_queue": self.read(PQ["explain_running"], {"queue": queue})[0][0],
            "ahead": self.read(PQ["explain_ahead"], {"queue": queue, "priority": priority,
                                                     "id": job_id})[0][0],
            "ckey": ckey,
            "key_running": self.read(PQ["explain_key_running"], {"ckey": ckey})[0][0]
            if ckey is not None else 0,
        }

    def bucket(self, name: str) -> tuple[float, float] | None:
        found = self.read(PQ["get_bucket"], {"name": name})
        return (found[0][0], found[0][1]) if found else None
