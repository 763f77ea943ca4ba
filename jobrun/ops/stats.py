"""Queue numbers from the store: depth, running, oldest queued age, last hour, failure rate.

`running` counts the jobs a worker runs; `held` the ones a service claimed ahead of a free
worker (stored as running, not started, their attempt not counted yet): both take the
queue's cap, but a held job is not running yet."""

from __future__ import annotations

from typing import Any

from ..store.contract import Store

_STATES = ("queued", "running", "scheduled", "retrying", "dead")
_COUNTS = (*_STATES, "held")


def queue_stats(store: Store, *, now: float) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    def q(name: str) -> dict[str, Any]:
        if name not in out:
            out[name] = {s: 0 for s in _COUNTS} | {
                "oldest_queued_age": 0.0, "succeeded_last_hour": 0, "dead_last_hour": 0,
                "failure_rate": 0.0, "paused": False}
        return out[name]

    for queue, c in store.queue_counts(since=now - 3600).items():
        row = q(queue)
        for state in _STATES:
            row[state] = c.get(state, 0)
        if c.get("oldest_queued") is not None:
            row["oldest_queued_age"] = round(max(0.0, now - c["oldest_queued"]), 3)
        row["succeeded_last_hour"] = c.get("succeeded_since", 0)
        row["dead_last_hour"] = c.get("dead_since", 0)
    with store.dashboard() as read:
        for r in read("top_held", {}):
            row = q(str(r["queue"]))
            row["held"] = int(r["n"])
            row["running"] = max(0, row["running"] - row["held"])
    for name in store.paused():
        q(name)["paused"] = True
    for v in out.values():
        done = v["succeeded_last_hour"] + v["dead_last_hour"]
        v["failure_rate"] = round(v["dead_last_hour"] / done, 4) if done else 0.0
    return out
