"""`jobrun explain ID`: why a job is not running now, in plain sentences.

`reasons` is pure: the facts are read by `gather` (store, the services' presence, config) and handed in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .. import clock
from ..config import Settings
from ..limits import Bucket, parse_rate
from ..model import JobRecord
from ..presence import presence_for
from ..registry import REGISTRY
from ..store.contract import Store
from .logs import escape


@dataclass
class Facts:
    paused: bool = False
    servers: list[str] = field(default_factory=list)   # live holders serving the queue
    running_in_queue: int = 0                           # held ones included: they take the cap
    held_in_queue: dict[str, int] = field(default_factory=dict)  # per holder: claimed ahead
    cap: int | None = None
    ahead: int = 0                                      # queued jobs that go first
    key_running: int = 0
    key_limit: int | None = None
    rates: list[tuple[str, float]] = field(default_factory=list)  # (bucket, seconds to a token)
    holder_alive: bool | None = None
    others: dict[str, list[str]] = field(default_factory=dict)  # live services: their queues
    wait: str | None = None                             # what a suspended workflow waits for
    task_runners: list[str] | None = None               # live services that run its task
    task_seen: float | None = None                      # when a service last declared it


def _ago(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def reasons(rec: JobRecord, facts: Facts, now: float) -> list[str]:
    """What holds the job back (or what it is doing), most important first, each one line
    with control, invisible and bidi characters escaped (as `ls` and the logs show them): a
    task name, key or error holding U+202E must not reverse what the operator reads."""
    return [escape(line) for line in _reasons(rec, facts, now)]


def _reasons(rec: JobRecord, facts: Facts, now: float) -> list[str]:
    s = rec.state.value
    if s in ("succeeded", "dead", "cancelled"):
        out = [f"job {rec.id} is finished: {s} {_ago(now - (rec.finished_at or now))} ago"]
        if s != "succeeded" and rec.errors:
            e = rec.errors[-1]
            out.append(f"last error: {e.get('type')}: {e.get('message')}")
        if s != "succeeded":
            out.append(f"run it again with: jobrun retry {rec.id}")
        return out
    if s == "running" and rec.held:
        run = [f"job {rec.id} is held by service {rec.holder} (claimed ahead of a free worker "
               f"there): it starts when a worker there is free; its attempt "
               f"({rec.attempts + 1}/{rec.max_attempts}) is counted only then"]
        if facts.holder_alive is False:
            run.append(f"its holder {rec.holder} is dead: the job goes back to queued within a "
                       "second, its attempt unspent unless that service's log says it began")
        elif rec.lease_until is not None and rec.lease_until < now:
            run.append("its lease expired: another service will put it back, the attempt "
                       "counted (its stuck holder may have begun it)")
        return run
    if s == "running":
        run = [f"job {rec.id} is running: attempt {rec.attempts}/{rec.max_attempts} on "
               f"{rec.holder}, for {_ago(now - (rec.started_at or now))}"]
        if facts.holder_alive is False:
            run.append(f"its holder {rec.holder} is dead: a live service takes it back within "
                       "a second")
        elif rec.lease_until is not None and rec.lease_until < now:
            run.append("its lease expired: another service will take it back")
        return run
    if s == "scheduled" and facts.wait:
        return [facts.wait]
    if s == "scheduled":
        return [f"job {rec.id} is waiting for its time: run_at {clock.iso(rec.run_at)} "
                f"(in {_ago(rec.run_at - now)})"]
    if s == "retrying":
        e = rec.errors[-1] if rec.errors else {}
        return [f"job {rec.id} is waiting for a retry: attempt {rec.attempts}/"
                f"{rec.max_attempts} failed ({e.get('type')}: {e.get('message')}); next attempt "
                f"at {clock.iso(rec.run_at)} (in {_ago(rec.run_at - now)})"]
    out = []
    if facts.paused:
        out.append(f"queue {rec.queue!r} is paused (jobrun resume {rec.queue})")
    if not facts.servers and facts.others:
        served = sorted({q for qs in facts.others.values() for q in qs})
        out.append(f"no live service serves queue {rec.queue!r}: {len(facts.others)} live "
                   f"service(s) serve {', '.join(served) or 'no queue'}; the queue needs a "
                   f"[queues.{rec.queue}] table in the service's config (a running service "
                   "reloads it on save or on SIGHUP)")
    elif not facts.servers:
        out.append(f"no live service serves queue {rec.queue!r} (start one: jobrun start)")
    if facts.servers and facts.task_runners == []:
        if facts.task_seen is None:
            out.append(f"no service runs task {rec.task!r}: none has declared it (a module "
                       "missing from `import`?); it goes dead (UnknownTask) within seconds")
        else:
            out.append(f"no live service runs task {rec.task!r} (one last ran it "
                       f"{_ago(now - facts.task_seen)} ago: start it; after a week without "
                       "one the job goes dead)")
    if facts.cap is not None and facts.running_in_queue >= facts.cap:
        out.append(_at_cap(rec.queue, facts))
    if facts.key_limit is not None and facts.key_running >= facts.key_limit:
        out.append(f"its concurrency key has {facts.key_running} running (limit "
                   f"{facts.key_limit})")
    for name, wait in facts.rates:
        out.append(f"rate limit {name} is spent: next token in {_ago(wait)}")
    if facts.ahead:
        out.append(f"{facts.ahead} job(s) of queue {rec.queue!r} go before it "
                   "(higher priority or older)")
    if not out:
        out.append("nothing holds it back: a service should claim it at once")
    return [f"job {rec.id} is queued"] + out


def _at_cap(queue: str, facts: Facts) -> str:
    """The host-wide cap taken: by running jobs, and by held ones (claimed ahead of a free
    worker by a service serving the queue alone), said apart with who holds them."""
    held = sum(facts.held_in_queue.values())
    if not held:
        return (f"queue {queue!r} is at its concurrency cap "
                f"({facts.running_in_queue}/{facts.cap} running)")
    by = ", ".join(f"{n} by {h}" for h, n in sorted(facts.held_in_queue.items()))
    return (f"queue {queue!r} is at its concurrency cap ({facts.running_in_queue}/{facts.cap} "
            f"taken: {facts.running_in_queue - held} running, {held} held: claimed ahead of "
            f"a free worker ({by}), they start before it)")


def gather(store: Store, rec: JobRecord, settings: Settings, now: float) -> Facts:
    """The facts `reasons` needs, from cheap indexed reads and what live services published."""
    f = Facts()
    f.paused = rec.queue in store.paused()
    presence = presence_for(store)
    for h in presence.holders():
        queues = presence.info(h).get("queues") or {}
        if not isinstance(queues, dict) or not presence.alive(h):
            continue
        f.others[h] = sorted(map(str, queues))
        if rec.queue in queues:
            f.servers.append(h)
            cap = int(queues[rec.queue])
            f.cap = cap if f.cap is None else min(f.cap, cap)
    if f.cap is None and rec.queue in settings.queues:
        f.cap = settings.queues[rec.queue].concurrency
    if rec.holder:
        f.holder_alive = presence.alive(rec.holder)
    if rec.state.value == "queued":
        decls = [(h, seen) for t, h, _, seen in store.catalog() if t == rec.task]
        f.task_runners = [h for h, _ in decls if presence.alive(h)]
        f.task_seen = max((seen for _, seen in decls), default=None)
    if rec.state.value == "scheduled":
        step = store.waiting_step(rec.id)
        if step is not None:
            from ..workflows.views import wait_reason

            f.wait = wait_reason(rec.id, step, store.open_children(rec.id), now)
    facts = store.explain_facts(rec.id, rec.queue, rec.priority)
    f.running_in_queue, f.ahead, ckey = (facts["running_in_queue"], facts["ahead"],
                                         facts["ckey"])
    if rec.state.value == "queued" and f.running_in_queue:
        with store.dashboard() as read:
            f.held_in_queue = {str(r["holder"]): int(r["n"])
                               for r in read("explain_held", {"queue": rec.queue})}
    spec = REGISTRY.find(rec.task)
    extra: dict[str, Any] = spec.extra if spec else {}
    if ckey is not None and extra.get("key_concurrency"):
        f.key_limit = int(extra["key_concurrency"])
        f.key_running = facts["key_running"]
    rates = []
    qrate = settings.queue(rec.queue).extra.get("rate_limit")
    if qrate:
        rates.append((f"queue:{rec.queue}", qrate))
    if extra.get("rate_limit"):
        rates.append((f"task:{rec.task}", extra["rate_limit"]))
    if ckey is not None and extra.get("key_rate_limit"):
        rates.append((f"key:{ckey}", extra["key_rate_limit"]))
    for name, text in rates:
        held = store.bucket(name)
        if held is not None:
            rate = parse_rate(text)
            b = Bucket(*held)
            b.refill(rate, now)
            if b.tokens < 1:
                f.rates.append((name, b.wait(rate)))
    return f


def explain_json(rec: JobRecord, facts: Facts, now: float) -> dict[str, Any]:
    return {"id": rec.id, "state": rec.state.value, "reasons": reasons(rec, facts, now),
            "facts": json.loads(json.dumps(facts.__dict__))}


def not_retried(store: Store, job_id: int) -> str:
    """Why `store.retry(job_id)` queued nothing, in one line (the CLI's and the console's
    words): gone, a cancelled attempt (its own or a child's) still running, its key held,
    or a state that does not retry."""
    rec = store.get(job_id)
    if rec is None:
        return f"no job {job_id}"
    if rec.state.value == "cancelled" and rec.holder is not None:
        return (f"job {job_id} not retried yet: its cancelled attempt still runs on "
                f"{rec.holder} (asked to stop; retry once it has ended, so it never runs "
                "twice at once)")
    for child in (store.get(i) for i in store.children(job_id)):
        if child is not None and child.state.value == "cancelled" and child.holder is not None:
            return (f"job {job_id} not retried yet: its child job {child.id}'s cancelled "
                    f"attempt still runs on {child.holder} (retry once it has ended: the "
                    "replay would find it cancelled)")
    if rec.state.value in ("dead", "cancelled", "retrying"):
        return (f"job {job_id} not retried: its key {rec.key!r} is held by another "
                f"unfinished job of {rec.task} (retrying it would run the task twice)")
    return f"job {job_id} is {rec.state.value}: only dead, cancelled or retrying jobs retry"
