"""Queue numbers from the store: depth, running, oldest queued age, last hour, failure rate."""

from __future__ import annotations

from typing import Any

from .store.queries import Q
from .store.sqlite import SqliteStore

_STATES = ("queued", "running", "scheduled", "retrying", "dead")


def queue_stats(store: SqliteStore, *, now: float) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    def q(name: str) -> dict[str, Any]:
        if name not in out:
            out[name] = {s: 0 for s in _STATES} | {
                "oldest_queued_age": 0.0, "succeeded_last_hour": 0, "dead_last_hour": 0,
                "failure_rate": 0.0, "paused": False}
        return out[name]

    for queue, state, n in store.read(Q["queue_counts"]):
        q(queue)[state] = n
    for queue, oldest in store.read(Q["oldest_queued"]):
        q(queue)["oldest_queued_age"] = round(max(0.0, now - oldest), 3)
    for queue, state, n in store.read(Q["finished_since"], {"since": now - 3600}):
        q(queue)[f"{state}_last_hour"] = n
    for name in store.paused():
        q(name)["paused"] = True
    for v in out.values():
        done = v["succeeded_last_hour"] + v["dead_last_hour"]
        v["failure_rate"] = round(v["dead_last_hour"] / done, 4) if done else 0.0
    return out
