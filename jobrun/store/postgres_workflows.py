"""Durable workflows on PostgreSQL (postgres_workflows.sql): step records, events, children.

Each write of a running body is one transaction that first locks the attempt's job row while
checking it still holds it (the fence), so a rescue or cancel cannot come between the check
and the write.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import psycopg

from ..model import NewJob
from .contract import ChildResult, StepRecord
from .postgres_ops import PgBase
from .postgres_sql import PQ, PWQ, insert, sql, wrap
from .sqlite_workflows import _params, _step


def record_steps_in(conn: psycopg.Connection[Any], job_id: int, token: int,
                    steps: list[StepRecord]) -> bool:
    """Step records in the open transaction on `conn` (the store's, or a once block's),
    only while the attempt holds its job (its row locked to the commit); whether it did."""
    if conn.execute(sql(PWQ["fence"]), {"job_id": job_id, "token": token}).fetchone() is None:
        return False
    for step in steps:
        conn.execute(sql(PWQ["put_step"]), _params(job_id, step))
    return True


class PgWorkflows(PgBase):
    """The WorkflowStore methods over the store's `read` and `write`."""

    @contextlib.contextmanager
    def _fenced(self, job_id: int, token: int, event: str | None = None
                ) -> Iterator[psycopg.Connection[Any] | None]:
        """A transaction, or None inside it when the attempt no longer holds its job. With
        `event`, that event name's lock is taken first (the order jobrun_events_wake takes
        them in: no deadlock between a wait and a send)."""
        with self.write() as conn:
            if event is not None:
                conn.execute(sql(PWQ["event_lock"]), {"name": event})
            held = conn.execute(sql(PWQ["fence"]), {"job_id": job_id, "token": token}
                                ).fetchone()
            yield conn if held is not None else None

    def steps(self, job_id: int) -> list[StepRecord]:
        return [_step(r) for r in self.read(PWQ["steps_of"], {"job_id": job_id})]

    def record_step(self, job_id: int, token: int, step: StepRecord) -> bool:
        with self._fenced(job_id, token) as conn:
            if conn is None:
                return False
            conn.execute(sql(PWQ["put_step"]), _params(job_id, step))
            return True

    def holds(self, job_id: int, token: int) -> bool:
        return bool(self.read(PWQ["holds"], {"job_id": job_id, "token": token}))

    def record_steps(self, job_id: int, token: int, steps: list[StepRecord], *,
                     last: bool = False) -> bool:
        with self.write() as conn:
            return record_steps_in(conn, job_id, token, steps)

    def wait_event(self, job_id: int, token: int, step: StepRecord, *, now: float
                   ) -> tuple[str, str | None]:
        with self._fenced(job_id, token, step.waits or "") as conn:
            if conn is None:
                return "fenced", None
            row = conn.execute(sql(PWQ["take_event"]), {"job_id": job_id, "seq": step.seq,
                                                        "name": step.waits}).fetchone()
            if row is not None:
                status, step.state, step.result = "taken", "succeeded", row[0]
            elif step.until is not None and step.until <= now:
                status, step.state, step.result = "timeout", "succeeded", "null"
            else:
                status, step.state = "waiting", "waiting"
            if status != "waiting":
                step.finished = now
            conn.execute(sql(PWQ["put_step"]), _params(job_id, step))
            return status, step.result if status == "taken" else None

    def start_children(self, job_id: int, token: int, step: StepRecord, jobs: list[NewJob],
                       *, fanin: bool, now: float) -> list[int] | None:
        with self._fenced(job_id, token) as conn:
            if conn is None:
                return None
            ids = insert(conn, jobs, now) if jobs else []
            if ids:
                conn.execute(sql(PWQ["adopt"]), {"parent": job_id, "fanin": int(fanin),
                                                 "ids": ids})
            step.result = json.dumps(ids)
            conn.execute(sql(PWQ["put_step"]), _params(job_id, step))
            return ids

    def child_results(self, ids: list[int]) -> list[ChildResult]:
        return [ChildResult(r[0], r[1], r[2], r[3] or "[]")
                for r in self.read(PWQ["child_results"], {"ids": ids})]

    def send_event(self, name: str, payload: str, *, connection: Any = None, now: float
                   ) -> int:
        params = {"name": name, "payload": payload, "now": now}
        if connection is not None:
            try:
                caller = self.caller(connection)
                row = caller.execute(sql(PWQ["insert_event"]), params).fetchone()
                caller.execute(sql(PQ["notify"]))  # waiters' services wake on its commit
            except psycopg.Error as exc:
                raise wrap(exc, self.shown) from exc
        else:
            with self.write() as conn:
                row = conn.execute(sql(PWQ["insert_event"]), params).fetchone()
                conn.execute(sql(PQ["notify"]))
        assert row is not None
        return int(row[0])

    def children(self, job_id: int) -> list[int]:
        return [r[0] for r in self.read(PWQ["children_of"], {"id": job_id})]

    def open_children(self, job_id: int) -> int:
        return int(self.read(PWQ["open_children"], {"id": job_id})[0][0])

    def waiting_step(self, job_id: int) -> StepRecord | None:
        found = self.read(PWQ["waiting_step"], {"job_id": job_id})
        return _step(found[0]) if found else None

    def parents(self, ids: list[int]) -> dict[int, int | None]:
        return {r[0]: r[1] for r in self.read(PWQ["parents_of"], {"ids": ids})}
