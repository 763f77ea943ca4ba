"""The worker's round on SQLite, inside one write transaction: record outcomes (fenced by
their tokens), promote due jobs, then claim per queue, only the tasks the service runs,
within the host-wide caps, key limits and rate limits (limits.py decides, from what is read
here).
"""

from __future__ import annotations

import json
from typing import Any

import apsw

from ..limits import Bucket, Candidate, Limits, choose, round_robin
from ..model import Claim, Outcome, error_entry
from . import rows
from .contract import Round
from .queries import Q
from .sqlite_workflows import WQ

Claimed = list[tuple[list[tuple[Any, ...]], bool]]  # (rows in claim order, held)


def acquire_round(conn: apsw.Connection, outcomes: list[Outcome], wants: dict[str, int],
                  holder: str, *, now: float, lease: float, full: bool,
                  paused: frozenset[str], next_due: float | None, limits: Limits | None,
                  limited: frozenset[str], tasks: frozenset[str] | None,
                  ahead: dict[str, int] | None = None,
                  began: list[tuple[int, int, float]] | None = None
                  ) -> tuple[Round, Claimed]:
    """One round in one transaction: record outcomes and held attempts that began, then
    claim up to `wants`, and `ahead` more held, only jobs of `tasks` (the tasks this service
    runs; None: any). The claimed rows come back raw, in claim order, for `claims` to read
    once the write lock is let go.

    A full round also promotes due jobs and reads paused queues and the next due time;
    a light one (between outcomes under load) trusts the caller's `paused`/`next_due`."""
    claimed: Claimed = []
    applied: frozenset[int] = frozenset()
    if began:  # first: an attempt that began and ended (or was cancelled) counts
        conn.executemany(Q["began"], [{"id": i, "token": t, "at": at} for i, t, at in began])
    if outcomes:
        applied = record(conn, outcomes, now)
    if full:
        conn.execute(Q["promote_due"], {"now": now})
        paused = frozenset(r[0] for r in conn.execute(Q["paused_queues"]))
    retry_in: float | None = None
    ahead = ahead or {}
    for queue in (wants.keys() | ahead.keys()) if ahead else wants:
        if queue in paused:
            continue
        limit, more = wants.get(queue, 0), ahead.get(queue, 0)
        if limit > 0 and limits is not None and queue in limits.caps:
            # The cap holds across every service on the host: count all holders.
            running = conn.execute(Q["running_in_queue"], {"queue": queue}).get
            limit = min(limit, limits.caps[queue] - running)
        if limit <= 0 and more <= 0:
            continue
        present = _queued_tasks(conn, queue, tasks)
        if not present:
            continue
        args = {"holder": holder, "now": now, "queue": queue, "limit": limit,
                "lease_until": now + lease, "held": 0}
        got: list[tuple[Any, ...]] = []
        if limit > 0:
            if limits is not None and queue in limited:
                got, wait = _acquire_limited(conn, args, limits, present)
                if wait is not None:
                    retry_in = wait if retry_in is None else min(retry_in, wait)
            else:
                got = _acquire(conn, args, present)
        claimed.append((_ordered(got), False))
        if more > 0 and limits is not None and queue in limited:
            present = limits.free_tasks(queue, present)  # a limit counts what runs
        if more > 0 and present:  # held: ahead of a free worker, uncounted until they start
            held = _acquire(conn, {**args, "limit": more, "held": 1}, present)
            claimed.append((_ordered(held), True))
    if full or outcomes:  # an outcome may wake a waiting workflow (its fan-in)
        next_due = conn.execute(Q["next_due"]).get
    return Round([], next_due, len(applied), paused, retry_in, applied), claimed

def _acquire(conn: apsw.Connection, args: dict[str, Any], present: list[str]
             ) -> list[tuple[Any, ...]]:
    if len(present) == 1:
        ids = [r[0] for r in conn.execute(Q["ready_ids"], {
            "queue": args["queue"], "task": present[0], "limit": args["limit"]})]
        return _acquire_ids(conn, args, ids)
    return _acquire_merged(conn, args, present)


def _acquire_ids(conn: apsw.Connection, args: dict[str, Any], ids: list[int]
                 ) -> list[tuple[Any, ...]]:
    """Claim the queued jobs of `ids` (chosen in this transaction), in one statement."""
    if not ids:
        return []
    return list(conn.execute(Q["acquire_many"], {
        "ids": json.dumps(ids), "holder": args["holder"], "now": args["now"],
        "lease_until": args["lease_until"], "held": args["held"]}))

def _ordered(got: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    if len(got) > 1:
        got.sort(key=rows.claim_order)
    return got

def claims(claimed: Claimed, now: float) -> tuple[list[Claim], list[dict[str, Any]]]:
    """Claimed rows as attempts, and the `fail` parameters of rows no enqueue could write
    (edited by hand, a bug): those go dead alone instead of failing every round of their
    queue (fenced by their token, in a write of their own)."""
    out: list[Claim] = []
    bad: list[dict[str, Any]] = []
    for got, held in claimed:
        for row in got:
            try:
                out.append(rows.claim(row, held=held))
            except (ValueError, TypeError, RecursionError) as exc:
                r = rows.named(row)
                bad.append({"id": r["id"], "token": r["token"], "state": "dead", "run_at": now,
                            "finished_at": now, "now": now, "error": json.dumps(error_entry(
                                "BadPayload", f"unreadable stored payload: {exc}"[:500],
                                r["attempts"], now))})
    return out, bad

def _queued_tasks(conn: apsw.Connection, queue: str, tasks: frozenset[str] | None
                  ) -> list[str]:
    """The tasks (of `tasks`) with queued jobs in `queue`: a skip-scan of jobs_ready, one
    index seek per task present, so other services' backlogs cost nothing here."""
    present: list[str] = []
    after = ""
    step = Q["queued_task_after"]
    while True:
        row = conn.execute(step, {"queue": queue, "after": after}).fetchone()
        if row is None:
            return present
        after = row[0]
        if tasks is None or after in tasks:
            present.append(after)

def _acquire_merged(conn: apsw.Connection, args: dict[str, Any], present: list[str]
                    ) -> list[tuple[Any, ...]]:
    """Several tasks queued in one queue: the best `limit` of their heads, in claim
    order (priority, then age), each head read in index order."""
    heads: list[tuple[Any, ...]] = []
    for task in present:
        heads.extend(conn.execute(Q["candidates"], {"queue": args["queue"], "task": task,
                                                    "limit": args["limit"]}))
    heads.sort(key=lambda r: (-r[1], r[0]))
    return _acquire_ids(conn, args, [job_id for job_id, _ in heads[:args["limit"]]])

def _acquire_limited(conn: apsw.Connection, args: dict[str, Any], limits: Limits,
                     present: list[str]) -> tuple[list[tuple[Any, ...]], float | None]:
    """Claim within key caps and rate limits, keys served round robin (see limits.py)."""
    queue, budget, now = args["queue"], args["limit"], args["now"]
    heads: dict[str | None, list[Candidate]] = {}
    unkeyed: list[Candidate] = []
    for task in present:
        unkeyed.extend(Candidate(*r) for r in conn.execute(
            Q["ready_without_key"], {"queue": queue, "task": task, "limit": budget}))
    if unkeyed:
        unkeyed.sort(key=lambda c: (-c.priority, c.id))
        heads[None] = unkeyed[:budget]
    mine = json.dumps(present)
    for (ckey,) in conn.execute(Q["ready_keys"], {"queue": queue}):
        found = [Candidate(*r) for r in conn.execute(
            Q["ready_of_key"], {"queue": queue, "ckey": ckey, "limit": budget,
                                "tasks": mine})]
        if found:
            heads[ckey] = found
    running: dict[str, int] = {r[0]: r[1] for r in conn.execute(Q["running_by_key"])}
    buckets: dict[str, Bucket] = {}
    names = {f"queue:{queue}"} | {f"task:{c.task}" for cs in heads.values() for c in cs} | \
        {f"key:{k}" for k in heads if k is not None}
    for name in names:
        row = conn.execute(Q["get_bucket"], {"name": name}).fetchone()
        if row is not None:
            buckets[name] = Bucket(row[0], row[1])
    ids, wait = choose(round_robin(heads), budget, limits, queue, running, buckets, now)
    rows = _acquire_ids(conn, args, ids)
    for name, b in buckets.items():
        conn.execute(Q["put_bucket"], {"name": name, "tokens": b.tokens, "at": b.at})
    return rows, wait

def record(conn: apsw.Connection, outcomes: list[Outcome], now: float) -> frozenset[int]:
    """Record outcomes fenced by their tokens; returns the tokens that still held their
    lease (the others were cancelled or taken back: their results are discarded)."""
    ids: set[int] = set()
    if len(outcomes) > 1 and all(o.state == "succeeded" for o in outcomes):  # the hot path
        got = _complete_many(conn, [[o.id, o.token, o.result] for o in outcomes], now)
        if got is None:  # each recorded
            return frozenset(o.token for o in outcomes)
        ids = got
    else:
        _record(conn, outcomes, now, ids)
    missed = [o for o in outcomes if o.id not in ids]
    if missed:  # cancelled attempts that ended: their jobs may be retried now
        conn.executemany(Q["began"], rows.began_of(missed))
        conn.executemany(Q["let_go"], [{"id": o.id, "token": o.token} for o in missed])
    return frozenset(o.token for o in outcomes if o.id in ids)


def _record(conn: apsw.Connection, outcomes: list[Outcome], now: float, ids: set[int]) -> None:
    """Outcomes of every kind, each kind in one statement; `ids` gets the jobs recorded."""
    done, failed, released, suspended = rows.outcome_params(outcomes, now)
    if len(done) > 1:
        batch = [[p["id"], p["token"], p["result"]] for p in done]
        got = _complete_many(conn, batch, now)
        ids.update(got if got is not None else (b[0] for b in batch))
        done = []
    for sql, params in ((Q["complete"], done), (Q["fail"], failed),
                        (Q["release"], released), (WQ["suspend"], suspended)):
        if params:
            ids.update(r[0] for r in conn.executemany(sql, params))


def _complete_many(conn: apsw.Connection, batch: list[list[Any]], now: float
                   ) -> set[int] | None:
    """Record [id, token, result] successes in one statement: None when each went in, else
    the ids of those that did (the others were cancelled or taken back)."""
    text = json.dumps(batch)
    conn.execute(Q["complete_many"], {"batch": text, "now": now})
    if conn.changes() == len(batch):
        return None
    return {r[0] for r in conn.execute(Q["completed_of_batch"], {"batch": text, "now": now})}
