"""The workflow part of the SQLite store: step records, events, children (workflows.sql).

Each write of a running body is one `BEGIN IMMEDIATE` transaction that first checks the
attempt still holds its job (the fence), so a body taken back from a stuck holder cannot
record over the attempt that replaced it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import apsw

from ..model import NewJob, error_entry
from .contract import ChildResult, StepRecord
from .files import in_caller, wrap
from .migrations import migrate_in
from .queries import parse, read_sql
from .rows import named

WQ: dict[str, str] = parse(read_sql("workflows.sql"))


#: The columns of `steps` (workflows.sql), in the order its reads return them.
STEP_COLUMNS = ("seq", "name", "kind", "state", "result", "error", "attempts", "started",
                "finished", "waits", "until")


def _step(row: tuple[Any, ...]) -> StepRecord:
    r = named(row, STEP_COLUMNS)
    error: Any = None
    if r["error"] is not None:
        try:
            error = json.loads(r["error"])
        except ValueError:
            error = dict(error_entry("?", str(r["error"])[:200], None, 0.0))
    r["error"] = error if isinstance(error, dict) else None
    return StepRecord(**r)


def _params(job_id: int, s: StepRecord) -> dict[str, Any]:
    return {"job_id": job_id, "seq": s.seq, "name": s.name, "kind": s.kind, "state": s.state,
            "result": s.result, "error": json.dumps(s.error) if s.error is not None else None,
            "attempts": s.attempts, "started": s.started, "finished": s.finished,
            "waits": s.waits, "until": s.until}


def record_steps_in(conn: apsw.Connection, job_id: int, token: int, steps: list[StepRecord]
                    ) -> bool:
    """Step records in the open transaction on `conn`, only while the attempt holds its job;
    whether it did."""
    if conn.execute(WQ["fence"], {"job_id": job_id, "token": token}).fetchone() is None:
        return False
    conn.executemany(WQ["put_step"], [_params(job_id, s) for s in steps])
    return True


def insert_event(conn: apsw.Connection, name: str, payload: str, now: float) -> int:
    return int(conn.execute(WQ["insert_event"], {"name": name, "payload": payload,
                                                 "now": now}).get)


class WorkflowActions:
    """The WorkflowStore methods over the store's `read`, `write` and job inserts."""

    path: str
    durability: str

    def read(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def connection(self) -> apsw.Connection:
        raise NotImplementedError

    def write(self, conn: apsw.Connection | None = None
              ) -> contextlib.AbstractContextManager[apsw.Connection]:
        raise NotImplementedError

    @staticmethod
    def _insert(conn: apsw.Connection, jobs: list[NewJob], now: float) -> list[int]:
        raise NotImplementedError

    @contextlib.contextmanager
    def _fenced(self, job_id: int, token: int) -> Iterator[apsw.Connection | None]:
        """A write transaction, or None inside it when the attempt no longer holds its job."""
        with self.write() as conn:
            held = conn.execute(WQ["fence"], {"job_id": job_id, "token": token}).fetchone()
            yield conn if held is not None else None

    def steps(self, job_id: int) -> list[StepRecord]:
        return [_step(r) for r in self.read(WQ["steps_of"], {"job_id": job_id})]

    def holds(self, job_id: int, token: int) -> bool:
        return bool(self.read(WQ["fence"], {"job_id": job_id, "token": token}))

    def record_step(self, job_id: int, token: int, step: StepRecord) -> bool:
        conn = self.connection()
        try:  # one statement: its own transaction, one write lock taken once
            conn.execute(WQ["put_step_fenced"], {**_params(job_id, step), "token": token})
            return bool(conn.changes())
        except apsw.Error as exc:
            raise wrap(exc, self.path, conn=conn) from exc

    def record_steps(self, job_id: int, token: int, steps: list[StepRecord], *,
                     last: bool = False) -> bool:
        later = last and self.durability == "full"
        if later:
            self.connection().execute(WQ["sync_later"])
        try:
            if len(steps) == 1:
                return self.record_step(job_id, token, steps[0])
            with self.write() as conn:
                return record_steps_in(conn, job_id, token, steps)
        finally:
            if later:
                self.connection().execute(WQ["sync_each"])

    def wait_event(self, job_id: int, token: int, step: StepRecord, *, now: float
                   ) -> tuple[str, str | None]:
        with self._fenced(job_id, token) as conn:
            if conn is None:
                return "fenced", None
            row = conn.execute(WQ["take_event"], {"job_id": job_id, "seq": step.seq,
                                                  "name": step.waits}).fetchone()
            if row is not None:
                status, step.state, step.result = "taken", "succeeded", row[0]
            elif step.until is not None and step.until <= now:
                status, step.state, step.result = "timeout", "succeeded", "null"
            else:
                status, step.state = "waiting", "waiting"
            if status != "waiting":
                step.finished = now
            conn.execute(WQ["put_step"], _params(job_id, step))
            return status, step.result if status == "taken" else None

    def start_children(self, job_id: int, token: int, step: StepRecord, jobs: list[NewJob],
                       *, fanin: bool, now: float) -> list[int] | None:
        with self._fenced(job_id, token) as conn:
            if conn is None:
                return None
            ids = self._insert(conn, jobs, now) if jobs else []
            text = json.dumps(ids)
            if ids:
                conn.execute(WQ["adopt"], {"parent": job_id, "fanin": int(fanin), "ids": text})
            step.result = text
            conn.execute(WQ["put_step"], _params(job_id, step))
            return ids

    def child_results(self, ids: list[int]) -> list[ChildResult]:
        return [ChildResult(r[0], r[1], r[2], r[3] or "[]")
                for r in self.read(WQ["child_results"], {"ids": json.dumps(ids)})]

    def send_event(self, name: str, payload: str, *, connection: Any = None, now: float
                   ) -> int:
        if connection is not None:
            return send_event_in(connection, name, payload, now=now, path=self.path)
        with self.write() as conn:
            return insert_event(conn, name, payload, now)

    def children(self, job_id: int) -> list[int]:
        return [r[0] for r in self.read(WQ["children_of"], {"id": job_id})]

    def open_children(self, job_id: int) -> int:
        return int(self.read(WQ["open_children"], {"id": job_id})[0][0])

    def waiting_step(self, job_id: int) -> StepRecord | None:
        rows = self.read(WQ["waiting_step"], {"job_id": job_id})
        return _step(rows[0]) if rows else None

    def parents(self, ids: list[int]) -> dict[int, int | None]:
        return {r[0]: r[1] for r in self.read(WQ["parents_of"], {"ids": json.dumps(ids)})}


def send_event_in(connection: apsw.Connection, name: str, payload: str, *, now: float,
                  path: str) -> int:
    """An event inside the caller's open transaction: it is stored (and wakes its waiters)
    only if that transaction commits."""
    in_caller(connection, path)
    try:
        migrate_in(connection, path)
        return insert_event(connection, name, payload, now)
    except apsw.Error as exc:
        raise wrap(exc, path, conn=connection) from exc
