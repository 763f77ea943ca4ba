"""Rows decoded by column name, in one place: what the claim queries return (their
`RETURNING` lists all name CLAIM_COLUMNS, in that order) and what a stored row's JSON
columns must hold."""

from __future__ import annotations

import json
from collections.abc import Callable
from json.scanner import make_scanner
from typing import Any

from ..model import BEGAN, Claim, Declaration, JobRecord, JobState, Outcome

#: The RETURNING list of acquire_many and acquire_id (queries.sql; PostgreSQL's acquire).
CLAIM_COLUMNS = ("id", "task", "queue", "args", "kwargs", "attempts", "max_attempts", "token",
                 "trace_id", "timeout", "options", "priority")


def named(row: tuple[Any, ...], columns: tuple[str, ...] = CLAIM_COLUMNS) -> dict[str, Any]:
    return dict(zip(columns, row, strict=True))


# typeshed types the argument as a scanner; at run time it is the decoder it reads with
_scan: Callable[[str, int], tuple[Any, int]] = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def _json(text: str) -> Any:
    """One JSON value, as json.loads reads it: the C scanner alone when the text is that
    value and nothing more, as every enqueue writes it (2 us less per claim, on the path of
    every job); json.loads for anything else (spaces around it, not JSON: it says why)."""
    try:
        value, end = _scan(text, 0)
        if end == len(text):
            return value
    except (StopIteration, TypeError):
        pass
    return json.loads(text)


def _list(text: str) -> Any:
    if text == "[]":
        return []
    value = _json(text)
    if not isinstance(value, list):
        raise ValueError(f"args must be a JSON array, not {type(value).__name__}")
    return value


_OPTIONS: dict[str, dict[str, Any]] = {}  # a task's jobs carry the same options text


def _options(text: str) -> Any:
    """A claim's options, parsed once per distinct text (a copy each: claims may differ)."""
    got = _OPTIONS.get(text)
    if got is None:
        got = _dict(text)
        if len(_OPTIONS) >= 256:
            _OPTIONS.clear()
        _OPTIONS[text] = got
    return dict(got)


def _dict(text: str) -> Any:
    if text == "{}":
        return {}
    value = _json(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, not {type(value).__name__}")
    return value


def claim(row: tuple[Any, ...], *, held: bool = False) -> Claim:
    """A claimed row as the attempt it hands out; ValueError/TypeError if its payload is not
    what any enqueue writes (edited by hand, a bug). Unpacked by position (the hot path of
    every round), in CLAIM_COLUMNS' order. A held row's attempt is the one it will be when
    it starts (its `attempts` are not counted yet)."""
    (id_, task, queue, args, kwargs, attempts, max_attempts, token, trace_id, timeout,
     options, _) = row
    return Claim(id_, task, queue, _list(args), _dict(kwargs), attempts + held, max_attempts,
                 token, trace_id, timeout, _options(options), held)  # by position: faster


_ID, _PRIORITY = CLAIM_COLUMNS.index("id"), CLAIM_COLUMNS.index("priority")


def claim_order(row: tuple[Any, ...]) -> tuple[int, int]:
    """Claims are handed out by priority, then age (RETURNING has no order)."""
    return (-row[_PRIORITY], row[_ID])


#: The columns of get_job and list_jobs (queries.sql).
JOB_COLUMNS = ("id", "task", "queue", "args", "kwargs", "priority", "state", "attempts",
                "max_attempts", "run_at", "key", "result", "errors", "enqueued_at", "started_at",
                "finished_at", "holder", "token", "lease_until", "trace_id", "timeout", "options")


def _lenient(text: Any, default: Any) -> Any:
    """For reading (ls, show): a column that is not JSON is shown as its raw text."""
    if text is None:
        return default
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return f"<unreadable: {str(text)[:200]}>"


def row_to_record(row: tuple[Any, ...]) -> JobRecord:
    """A job row (get_job, list_jobs) as a record, read leniently."""
    d = named(row, JOB_COLUMNS)
    d["args"] = _lenient(d["args"], [])
    d["kwargs"] = _lenient(d["kwargs"], {})
    d["result"] = _lenient(d["result"], None)
    errors = _lenient(d["errors"], [])
    d["errors"] = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
    options = _lenient(d["options"], {})
    d["options"] = options if isinstance(options, dict) else {}
    d["state"] = JobState(d["state"])
    return JobRecord(**d)


Params = list[dict[str, Any]]


def outcome_params(outcomes: list[Outcome], now: float) -> tuple[Params, Params, Params, Params]:
    """A round's outcomes as the parameters of its four fenced writes, for every store:
    (succeeded, failed: retrying/dead/cancelled, released, suspended workflows)."""
    done: Params = []
    failed: Params = []
    released: Params = []
    suspended: Params = []
    for o in outcomes:
        if o.state == "succeeded":
            done.append({"id": o.id, "token": o.token, "result": o.result, "now": now})
        elif o.state == "released":
            released.append({"id": o.id, "token": o.token})
        elif o.state == "suspended":  # a workflow waits (jobrun/workflows)
            suspended.append({"id": o.id, "token": o.token, "now": now,
                              "run_at": o.run_at if o.run_at is not None else now})
        else:
            finished = now if o.state in ("dead", "cancelled") else None
            failed.append({"id": o.id, "token": o.token, "state": o.state, "now": now,
                           "run_at": o.run_at if o.run_at is not None else now,
                           "finished_at": finished, "error": json.dumps(o.error or {})})
    return done, failed, released, suspended


def began_of(missed: list[Outcome]) -> Params:
    """The `began` parameters of held attempts that began but whose outcome missed (their
    job cancelled meanwhile, letting go): the attempt that began still counts."""
    return [{"id": o.id, "token": o.token, "at": o.extra[BEGAN]} for o in missed
            if o.extra.get(BEGAN) is not None]


def declarations(rows: list[tuple[Any, ...]]) -> list[Declaration]:
    """Catalog rows (task, holder, options JSON, seen_at); unreadable options count as none."""
    out = []
    for task, holder, options, seen in rows:
        try:
            opts = json.loads(options)
        except ValueError:
            opts = {}
        out.append(Declaration(task, holder, opts if isinstance(opts, dict) else {}, seen))
    return out
