"""The worker's round on PostgreSQL, inside one transaction: record outcomes (fenced by their
tokens), promote due jobs, then claim per queue with `FOR UPDATE SKIP LOCKED`. A queue with
a host-wide cap or limits (limits.py decides, from what is read here) first takes its
advisory lock: the running count and the rate buckets must not be read by two rounds at once.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

from ..limits import Bucket, Candidate, Limits, choose, round_robin
from ..model import Claim, Outcome, error_entry
from . import rows
from .contract import Round
from .postgres_sql import PQ, PWQ, sql


def acquire_round(conn: psycopg.Connection[Any], outcomes: list[Outcome],
                  wants: dict[str, int], holder: str, *, now: float, lease: float, full: bool,
                  paused: frozenset[str], next_due: float | None, limits: Limits | None,
                  limited: frozenset[str], tasks: frozenset[str] | None,
                  ahead: dict[str, int] | None = None,
                  began: list[tuple[int, int, float]] | None = None) -> Round:
    """One round in the caller's transaction (see LeaseStore.acquire_round): record outcomes
    and held attempts that began, then claim up to `wants`, and `ahead` more held."""
    claims: list[Claim] = []
    applied: frozenset[int] = frozenset()
    if began:  # first: an attempt that began and ended (or was cancelled) counts
        ordered = sorted(began)
        conn.execute(sql(PQ["began"]), {"ids": [b[0] for b in ordered],
                                        "tokens": [b[1] for b in ordered],
                                        "ats": [b[2] for b in ordered]})
    if outcomes:
        applied = record(conn, outcomes, now)
    if full:
        conn.execute(sql(PQ["promote_due"]), {"now": now})
        paused = frozenset(r[0] for r in conn.execute(sql(PQ["paused_queues"]), {}))
    retry_in: float | None = None
    names = sorted(tasks) if tasks is not None else None
    ahead = ahead or {}
    locking = queue_locks(wants, ahead, limits, limited)
    for queue in [*wants, *(q for q in ahead if q not in wants)]:
        if queue in paused:
            continue
        limit, more = wants.get(queue, 0), ahead.get(queue, 0)
        free = names
        if more > 0 and limits is not None and queue in limited:
            # A limit counts what runs: only jobs of tasks no limit counts are held.
            free = limits.free_tasks(queue, names) if names is not None else []
            more = more if free else 0
        if limit <= 0 and more <= 0:
            continue
        if queue in locking:
            conn.execute(sql(PQ["queue_lock"]), {"queue": queue})
        if limit > 0 and limits is not None and queue in limits.caps:
            # The cap holds across every service on the host: count all holders (their
            # held claims too).
            row = conn.execute(sql(PQ["running_in_queue"]), {"queue": queue}).fetchone()
            limit = min(limit, limits.caps[queue] - int(row[0] if row else 0))
            if limit <= 0 and more <= 0:
                continue
        args = {"holder": holder, "now": now, "queue": queue, "limit": limit,
                "lease_until": now + lease, "tasks": names, "held": False}
        got: list[tuple[Any, ...]] = []
        if limit > 0:
            if limits is not None and queue in limited:
                got, wait = _acquire_limited(conn, args, limits)
                if wait is not None:
                    retry_in = wait if retry_in is None else min(retry_in, wait)
            else:
                got = conn.execute(sql(PQ["acquire"]), args).fetchall()
        claims.extend(_claims(conn, got, now, held=False))
        if more > 0:  # held: claimed ahead of a free worker, not counted until they start
            got = conn.execute(sql(PQ["acquire"]), {**args, "limit": more, "held": True,
                                                    "tasks": free}).fetchall()
            claims.extend(_claims(conn, got, now, held=True))
    if full or outcomes:  # an outcome may wake a waiting workflow (its fan-in)
        row = conn.execute(sql(PQ["next_due"]), {}).fetchone()
        next_due = row[0] if row else None
    return Round(claims, next_due, len(applied), paused, retry_in, applied)


def queue_locks(wants: dict[str, int], ahead: dict[str, int] | None, limits: Limits | None,
                limited: frozenset[str]) -> list[str]:
    """The queues whose advisory lock a round takes, in name order: those it claims from
    under a host-wide cap (held claims too: other rounds must count them) or within limits."""
    if limits is None:
        return []
    ahead = ahead or {}
    return sorted(q for q in wants.keys() | ahead.keys()
                  if (q in limits.caps and (wants.get(q, 0) > 0 or ahead.get(q, 0) > 0))
                  or (q in limited and wants.get(q, 0) > 0))


def _claims(conn: psycopg.Connection[Any], got: list[tuple[Any, ...]], now: float, *,
            held: bool) -> list[Claim]:
    """Claimed rows as attempts, in claim order. A row no enqueue could write goes dead
    alone (see rounds.py)."""
    got.sort(key=rows.claim_order)
    out: list[Claim] = []
    for r in got:
        try:
            out.append(rows.claim(r, held=held))
        except (ValueError, TypeError, RecursionError) as exc:
            bad = rows.named(r)
            conn.execute(sql(PQ["fail"]), {
                "id": bad["id"], "token": bad["token"], "state": "dead", "run_at": now,
                "finished_at": now, "now": now, "error": json.dumps(error_entry(
                    "BadPayload", f"unreadable stored payload: {exc}"[:500],
                    bad["attempts"], now))})
    return out


def _acquire_limited(conn: psycopg.Connection[Any], args: dict[str, Any], limits: Limits
                     ) -> tuple[list[tuple[Any, ...]], float | None]:
    """Claim within key caps and rate limits, keys served round robin (see limits.py); the
    queue's advisory lock is held, so what is read here stays true until commit."""
    queue, budget, now = args["queue"], args["limit"], args["now"]
    base = {"queue": queue, "limit": budget, "tasks": args["tasks"]}
    heads: dict[str | None, list[Candidate]] = {}
    unkeyed = [Candidate(*r) for r in conn.execute(sql(PQ["ready_without_key"]), base)]
    if unkeyed:
        heads[None] = unkeyed
    for (ckey,) in conn.execute(sql(PQ["ready_keys"]), {"queue": queue}).fetchall():
        found = [Candidate(*r) for r in conn.execute(sql(PQ["ready_of_key"]),
                                                      {**base, "ckey": ckey})]
        if found:
            heads[ckey] = found
    running: dict[str, int] = {r[0]: r[1] for r in conn.execute(sql(PQ["running_by_key"]), {})}
    buckets: dict[str, Bucket] = {}
    names = {f"queue:{queue}"} | {f"task:{c.task}" for cs in heads.values() for c in cs} | \
        {f"key:{k}" for k in heads if k is not None}
    for name in sorted(names):
        row = conn.execute(sql(PQ["get_bucket_locked"]), {"name": name}).fetchone()
        if row is not None:
            buckets[name] = Bucket(row[0], row[1])
    ids, wait = choose(round_robin(heads), budget, limits, queue, running, buckets, now)
    got: list[tuple[Any, ...]] = []
    if ids:
        got = conn.execute(sql(PQ["acquire_ids"]), {**args, "ids": list(ids)}).fetchall()
    for name, b in buckets.items():
        conn.execute(sql(PQ["put_bucket"]), {"name": name, "tokens": b.tokens, "at": b.at})
    return got, wait


def record(conn: psycopg.Connection[Any], outcomes: list[Outcome], now: float
           ) -> frozenset[int]:
    """Record outcomes fenced by their tokens; the tokens that still held their lease."""
    done, failed, released, suspended = rows.outcome_params(outcomes, now)
    ids: set[int] = set()
    cur = conn.cursor()
    if len(done) > 1:  # one statement for the successes, after locking their rows in order
        cur.execute(sql(PQ["lock_ids"]), {"ids": sorted(int(d["id"]) for d in done)})
        ids.update(r[0] for r in cur.execute(sql(PQ["complete_many"]), {
            "ids": [d["id"] for d in done], "tokens": [d["token"] for d in done],
            "results": [d["result"] for d in done], "now": now}).fetchall())
        done = []
    for batch in (done, failed, released, suspended):
        batch.sort(key=lambda p: int(p["id"]))  # rows locked in id order: no deadlocks
    for query, params in ((PQ["complete"], done), (PQ["fail"], failed),
                          (PQ["release"], released), (PWQ["suspend"], suspended)):
        if not params:
            continue
        if params is suspended:
            cur.execute(sql(PWQ["lock_suspending"]), {"ids": [p["id"] for p in params]})
        cur.executemany(sql(query), params, returning=True)
        while True:
            ids.update(r[0] for r in cur.fetchall())
            if not cur.nextset():
                break
    missed = sorted((o for o in outcomes if o.id not in ids), key=lambda o: o.id)
    if missed:  # cancelled attempts that ended: their jobs may be retried now
        began = rows.began_of(missed)
        if began:
            cur.execute(sql(PQ["began"]), {"ids": [b["id"] for b in began],
                                           "tokens": [b["token"] for b in began],
                                           "ats": [b["at"] for b in began]})
        cur.executemany(sql(PQ["let_go"]), [{"id": o.id, "token": o.token} for o in missed])
    return frozenset(o.token for o in outcomes if o.id in ids)
