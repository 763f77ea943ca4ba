"""The store contract: operations named after what they do to a job's lease.

A service needs only these; a PostgreSQL store can follow by implementing them.

    enqueue   new rows (one transaction for many)
    acquire   hand out queued jobs to a holder, with a fencing token and a lease
    complete  record success of an attempt (fenced by its token)
    fail      record a failed attempt: retrying with a run_at, or dead
    release   give an unstarted/unfinished attempt back without counting it
    extend    renew the leases of a holder (or one job)
    rescue    take back the jobs of a dead holder or an expired lease
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..model import Claim, JobRecord


@dataclass
class NewJob:
    """What enqueue writes: validated, serialised, resolved against task defaults."""

    task: str
    queue: str
    args: str            # JSON
    kwargs: str          # JSON
    priority: int
    max_attempts: int
    run_at: float
    scheduled: bool
    key: str | None = None
    trace_id: str | None = None
    timeout: float | None = None
    options: str = "{}"  # JSON
    ckey: str | None = None  # concurrency key, from the task's concurrency_key format


@dataclass
class Outcome:
    """The end of one attempt, recorded in a batch."""

    id: int
    token: int
    state: str                     # succeeded | retrying | dead | cancelled | released
    result: str | None = None      # JSON, for succeeded
    run_at: float | None = None    # for retrying
    error: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tick:
    """What one acquire round hands back."""

    claims: list[Claim]
    next_due: float | None
    recorded: int          # outcomes that still held their lease
    paused: frozenset[str]
    retry_in: float | None = None  # a rate limit held jobs back: try again after this
    applied: frozenset[int] = frozenset()  # tokens of the outcomes recorded (the rest: fenced)


class Store(Protocol):
    path: str

    def enqueue(self, jobs: list[NewJob], *, connection: Any = None, now: float) -> list[int]: ...
    def tick(self, outcomes: list[Outcome], wants: dict[str, int], holder: str, *, now: float,
             lease: float) -> Tick: ...
    def extend(self, holder: str, *, now: float, lease: float) -> int: ...
    def extend_job(self, job_id: int, token: int, *, now: float, lease: float) -> bool: ...
    def rescue(self, holder: str, reason: str, *, now: float) -> list[tuple[Any, ...]]: ...
    def running_holders(self) -> list[str]: ...
    def get(self, job_id: int) -> JobRecord | None: ...
    def cancel(self, job_id: int, *, now: float) -> str | None: ...
    def close(self) -> None: ...
