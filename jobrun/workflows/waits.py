"""What a workflow waits for: a time (`sleep`), an event (`wait_event`), its children
(`gather`); and the jobs a body enqueues.

Each is a recorded call like a step. Its record (the deadline, the event's name, the child
ids) is written before the body waits; then the attempt ends with a suspend: the job waits
in the store (`scheduled`, due at the deadline or "never") without a slot and without
counting an attempt. What it waits for wakes it in the transaction that brings it: an event
insert, the last gathered child's end (a check per child, see migrations v5); the suspend
itself checks again, so a wake that came while the body still ran is not lost.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .. import clock
from ..errors import InvalidJob, InvalidValue, JobFailed
from ..model import FANIN, NewJob, error_entry
from ..serialize import loads
from ..store.contract import StepRecord
from ..task import Call
from .run import FOREVER, Fenced, WorkflowRun, require_run, reset_run, set_run


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidJob(f"{what} must be a number of seconds, not {value!r}")
    if math.isnan(value) or value < 0:
        raise InvalidValue(f"{what} must be a number of seconds >= 0, not {value!r}")
    return float(value)


def sleep(seconds: float) -> None:
    """Wait `seconds` in the store (no slot held); resumes on time after any restarts."""
    secs = _seconds(seconds, "sleep()")
    run = require_run("sleep")
    seq, rec = run.next("jobrun.sleep", "sleep")
    now = clock.now()
    if rec is not None and rec.state == "succeeded":
        return
    if rec is None:
        until = min(now + secs, FOREVER)
        rec = StepRecord(seq, "jobrun.sleep", "sleep", "waiting", None, None, 0, now, None,
                         until=until)
        if run.inline or until <= now:
            _finish(run, rec, now)
            return
        run.record(rec)
        raise run.suspend(until)
    until = rec.until if rec.until is not None else now
    if run.inline or until <= now:
        _finish(run, rec, now)
        return
    raise run.suspend(until)


def _finish(run: WorkflowRun, rec: StepRecord, now: float, result: str = "null") -> None:
    rec.state, rec.result, rec.finished = "succeeded", result, now
    run.record(rec)


def wait_event(name: str, timeout: float | None = None) -> Any:
    """The payload of the oldest event `name` not yet taken (sent before or after this wait
    began), or None after `timeout` seconds (None: no timeout)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidJob(f"wait_event() takes a non-blank event name string, not {name!r}")
    limit = None if timeout is None else _seconds(timeout, "wait_event() timeout")
    run = require_run("wait_event")
    seq, rec = run.next("jobrun.wait_event", "event")
    if rec is not None and rec.state == "succeeded":
        return loads(rec.result or "null")
    now = clock.now()
    if rec is None:
        until = FOREVER if limit is None else min(now + limit, FOREVER)
        rec = StepRecord(seq, "jobrun.wait_event", "event", "waiting", None, None, 0, now,
                         waits=name, until=until)
    if run.inline:
        rec.until = now  # inline mode: an event sent already, else None at once
    status, payload = run.store.wait_event(run.job_id, run.token, rec, now=now)
    if status == "fenced":
        raise Fenced(f"job {run.job_id} is no longer held by this attempt")
    run.recorded[seq] = rec
    if status == "waiting":
        raise run.suspend(rec.until if rec.until is not None else FOREVER)
    return loads(payload) if payload is not None else None


def _prepare(run: WorkflowRun, calls: list[Call], what: str) -> list[NewJob]:
    news = []
    for c in calls:
        if not isinstance(c, Call):
            raise InvalidJob(f"{what} takes task.call(...) items, not {c!r}")
        opts = c.options or {}
        new = run.prepare(c.task, list(c.args), dict(c.kwargs), queue=opts.get("queue"),
                          priority=opts.get("priority"), run_at=opts.get("run_at"))
        ma = opts.get("max_attempts")
        if ma is not None:
            if not isinstance(ma, int) or isinstance(ma, bool) or ma < 1:
                raise InvalidJob(f"max_attempts must be a positive int, not {ma!r}")
            new.max_attempts = ma
        if run.ctx is not None and run.ctx.trace_id:
            new.trace_id = run.ctx.trace_id  # children carry their workflow's trace
        news.append(new)
    return news


def gather(calls: list[Call]) -> list[Any]:
    """Run the calls as child jobs (any queue and executor) and return their results, in
    order, once every one has finished; JobFailed if one ended dead or cancelled."""
    if not isinstance(calls, (list, tuple)):
        raise InvalidJob(f"gather() takes a list of task.call(...) items, not {calls!r}")
    run = require_run("gather")
    seq, rec = run.next("jobrun.gather", "gather")
    if rec is not None and rec.state == "succeeded":
        return list(loads(rec.result or "[]"))
    if rec is not None and rec.state == "failed":
        raise JobFailed((rec.error or {}).get("message", "a child failed"))
    now = clock.now()
    if rec is None:
        news = _prepare(run, list(calls), "gather()")
        for n in news:  # the service ending it rings the others (the parent may be theirs)
            n.options = json.dumps({**json.loads(n.options), FANIN: True})
        rec = StepRecord(seq, "jobrun.gather", "gather", "waiting", None, None, 0, now)
        ids = run.store.start_children(run.job_id, run.token, rec, news, fanin=True, now=now)
        if ids is None:
            raise Fenced(f"job {run.job_id} is no longer held by this attempt")
        run.recorded[seq] = rec
        if ids and not run.inline:
            run.ring()
        if run.inline:
            _run_inline(run, ids)
    ids = list(json.loads(rec.result or "[]"))
    return _collect(run, rec, ids)


def _run_inline(run: WorkflowRun, ids: list[int]) -> None:
    from ..inline import run_inline

    outer = set_run(None)
    try:
        for i in ids:
            run_inline(run.store, run.app.inline_holder(), i)
    finally:
        reset_run(outer)


def _collect(run: WorkflowRun, rec: StepRecord, ids: list[int]) -> list[Any]:
    """The children's results once all have finished; else wait (again)."""
    rows = run.store.child_results(ids) if ids else []
    failed = []
    for job_id, state, _, errors in rows:
        if state in ("scheduled", "queued", "running", "retrying"):
            raise run.suspend(FOREVER)  # woken early: the last child wakes it again
        if state != "succeeded":
            failed.append((job_id, state or "gone", errors))
    now = clock.now()
    if failed:
        job_id, state, errors = failed[0]
        last = (loads(errors) or [{}])[-1] if state != "gone" else {}
        why = f": {last.get('type')}: {last.get('message')}" if last.get("type") else ""
        msg = (f"{len(failed)} of {len(ids)} children failed; child job {job_id} is "
               f"{state}{why}")
        rec.state, rec.finished = "failed", now
        rec.error = dict(error_entry("JobFailed", msg, None, now))
        run.record(rec)
        raise JobFailed(msg)
    text = "[" + ",".join(r[2] if r[2] is not None else "null" for r in rows) + "]"
    _finish(run, rec, now, text)
    return list(json.loads(text))


def record_enqueue(run: WorkflowRun, news: list[NewJob]) -> list[int]:
    """An enqueue by the body: recorded like a step, so a replay does not enqueue again."""
    name = "enqueue " + ",".join(sorted({n.task for n in news}))
    seq, rec = run.next(name, "enqueue")
    if rec is not None and rec.state == "succeeded":
        return list(json.loads(rec.result or "[]"))
    now = clock.now()
    rec = StepRecord(seq, name, "enqueue", "succeeded", None, None, 1, now, now)
    ids = run.store.start_children(run.job_id, run.token, rec, news, fanin=False, now=now)
    if ids is None:
        raise Fenced(f"job {run.job_id} is no longer held by this attempt")
    run.recorded[seq] = rec
    return ids
