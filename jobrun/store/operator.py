"""What operators and the CLI do to jobs: read them (leniently: a malformed row must not hide
the others), cancel, retry, prune, pause. Mixed into the store."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import apsw

from ..model import JobRecord
from .contract import Status
from .queries import Q
from .rows import row_to_record
from .sqlite_workflows import WQ


class OperatorActions:
    """Reads and operator actions over a store's `read` and `write`."""

    def read(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def write(self, conn: apsw.Connection | None = None
              ) -> contextlib.AbstractContextManager[apsw.Connection]:
        raise NotImplementedError


    def get(self, job_id: int) -> JobRecord | None:
        rows = self.read(Q["get_job"], {"id": job_id})
        return row_to_record(rows[0]) if rows else None

    def status(self, job_id: int) -> Status | None:
        rows = self.read(Q["job_status"], {"id": job_id})
        return Status(*rows[0]) if rows else None

    def list_jobs(self, *, state: str | None = None, queue: str | None = None,
             limit: int = 50) -> list[JobRecord]:
        rows = self.read(Q["list_jobs"], {"state": state, "queue": queue, "limit": limit})
        return [row_to_record(r) for r in rows]

    def cancel(self, job_id: int, *, now: float) -> str | None:
        """Cancel a waiting job at once; a running one is marked so its holder stops it.

        Returns the state the job was in, or None when it does not exist."""
        with self.write() as conn:
            row = conn.execute(Q["job_state"], {"id": job_id}).fetchone()
            if row is None:
                return None
            if row[0] in ("scheduled", "queued", "retrying"):
                conn.execute(Q["cancel_waiting"], {"id": job_id, "now": now})
            elif row[0] == "running":
                conn.execute(Q["cancel_running"], {"id": job_id, "now": now})
            if row[0] in ("scheduled", "queued", "retrying", "running"):
                # A workflow's unfinished children (and theirs) go with it.
                conn.execute(WQ["cancel_descendants"], {"id": job_id, "now": now})
            return str(row[0])

    def retry(self, job_id: int | None, *, now: float) -> list[int]:
        with self.write() as conn:
            if job_id is None:
                ids = [r[0] for r in conn.execute(Q["retry_dead"], {"now": now})]
            else:
                ids = [r[0] for r in conn.execute(Q["retry_job"], {"id": job_id, "now": now})]
            if ids:  # a workflow's dead or cancelled children go with it: a real chance
                ids += [r[0] for r in conn.execute(WQ["retry_children"],
                                                   {"ids": json.dumps(ids), "now": now})]
                conn.execute(WQ["reopen_gathers"], {"ids": json.dumps(ids)})
                conn.execute(WQ["forget_failures"], {"ids": json.dumps(ids)})
            return ids

    def prune(self, before: float, states: tuple[str, ...] = ("succeeded", "cancelled", "dead"),
              *, batch: int = 500) -> int:
        """Delete finished jobs in `states` older than `before`, in small batches (short locks)."""
        total = 0
        for i in range(0, len(states), 2):
            total += self._prune(before, states[i], states[i + 1] if i + 1 < len(states) else None,
                                 batch)
        return total

    def prune_job(self, job_id: int) -> bool:
        """Delete one finished job (`prune`'s rule, by id); False when it was not deleted."""
        with self.write() as conn:
            conn.execute(Q["prune_job"], {"id": job_id})
            return int(conn.changes()) > 0

    def _prune(self, before: float, state: str, state2: str | None, batch: int) -> int:
        total = 0
        while True:
            with self.write() as conn:
                conn.execute(Q["prune_finished"], {"before": before, "limit": batch,
                                                   "state": state, "state2": state2})
                n = int(conn.changes())
            total += n
            if n < batch:
                return total

    def set_concurrency(self, queue: str, n: int | None) -> None:
        with self.write() as conn:
            conn.execute(Q["set_concurrency"], {"name": queue, "n": n})

    def concurrency(self) -> dict[str, int]:
        return {str(q): int(n) for q, n in self.read(Q["queue_concurrency"])}

    def set_paused(self, queue: str, paused: bool) -> None:
        with self.write() as conn:
            conn.execute(Q["set_paused"], {"name": queue, "paused": int(paused)})

    def paused(self) -> frozenset[str]:
        return frozenset(r[0] for r in self.read(Q["paused_queues"]))

    def queue_names(self) -> set[str]:
        return {str(r[0]) for r in self.read(Q["queue_names"])}

    def queue_counts(self, *, since: float) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for queue, state, n in self.read(Q["queue_counts"]):
            out.setdefault(queue, {})[state] = n
        for queue, oldest in self.read(Q["oldest_queued"]):
            out.setdefault(queue, {})["oldest_queued"] = oldest
        for queue, state, n in self.read(Q["finished_since"], {"since": since}):
            out.setdefault(queue, {})[f"{state}_since"] = n
        return out

    def pending(self, horizon: float, tasks: frozenset[str] | None = None) -> int:
        return int(self.read(Q["pending"], {"horizon": horizon})[0][0])

    def counts(self) -> dict[str, int]:
        return {str(s): int(n) for s, n in self.read(Q["state_counts"])}

    def explain_facts(self, job_id: int, queue: str, priority: int) -> dict[str, Any]:
        ckey_rows = self.read(Q["explain_key"], {"id": job_id})
        ckey = ckey_rows[0][0] if ckey_rows else None
        return {
            "running_in_queue": self.read(Q["explain_running"], {"queue": queue})[0][0],
            "ahead": self.read(Q["explain_ahead"], {"queue": queue, "priority": priority,
                                                    "id": job_id})[0][0],
            "ckey": ckey,
            "key_running": self.read(Q["explain_key_running"], {"ckey": ckey})[0][0]
            if ckey is not None else 0,
        }

    def bucket(self, name: str) -> tuple[float, float] | None:
        rows = self.read(Q["get_bucket"], {"name": name})
        return (rows[0][0], rows[0][1]) if rows else None
