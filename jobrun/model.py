"""The job model: states, allowed transitions and the stored row; no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, NamedTuple, NotRequired, TypedDict


class JobState(str, enum.Enum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


#: States in which a job is not finished; a `key` is unique among these.
ACTIVE = frozenset({JobState.SCHEDULED, JobState.QUEUED, JobState.RUNNING, JobState.RETRYING})
#: States a job never leaves on its own.
FINISHED = frozenset({JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED})
#: States waiting for their `run_at`.
WAITING = frozenset({JobState.SCHEDULED, JobState.RETRYING})

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.SCHEDULED: frozenset({JobState.QUEUED, JobState.CANCELLED}),
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED}),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.RETRYING, JobState.DEAD,
                                 JobState.CANCELLED, JobState.QUEUED}),  # queued: handed back
    JobState.RETRYING: frozenset({JobState.QUEUED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.DEAD: frozenset({JobState.QUEUED}),
    JobState.CANCELLED: frozenset({JobState.QUEUED}),
}


def can_move(src: JobState, dst: JobState) -> bool:
    """Whether the state machine allows src -> dst (running -> queued is a hand-back)."""
    return dst in TRANSITIONS[src]


@dataclass(frozen=True)
class JobRecord:
    """A job row as read from the store; times are Unix seconds (UTC)."""

    id: int
    task: str
    queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    priority: int
    state: JobState
    attempts: int
    max_attempts: int
    run_at: float
    key: str | None = None
    result: Any = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    enqueued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    holder: str | None = None
    token: int | None = None
    lease_until: float | None = None
    trace_id: str | None = None
    timeout: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def held(self) -> bool:
        """Claimed ahead of a free worker (`running`, not started): its attempt is not
        counted until a worker of its holder starts it."""
        return self.state is JobState.RUNNING and self.started_at is None


@dataclass(slots=True)
class Claim:
    """One attempt handed to this process: fenced by `token`. Not changed once made (not
    frozen: a frozen dataclass costs 2 us more to make, on the path of every job)."""

    id: int
    task: str
    queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    attempt: int
    max_attempts: int
    token: int
    trace_id: str | None
    timeout: float | None
    options: dict[str, Any]
    held: bool = False  # claimed ahead of a free worker: its attempt counts once it starts


class Declaration(NamedTuple):
    """One service's declaration of a task in the catalog."""

    task: str
    holder: str
    options: dict[str, Any]
    seen_at: float


class ErrorEntry(TypedDict):
    """One failed attempt in a job's error history (`errors`, newest last)."""

    at: float
    type: str
    message: str
    attempt: int | None
    traceback: NotRequired[str]
    retry_in: NotRequired[float]
    exit_code: NotRequired[int]
    stdout: NotRequired[str]
    stderr: NotRequired[str]


def error_entry(type: str, message: str, attempt: int | None, now: float, *,
                traceback: str = "") -> ErrorEntry:
    """The entry every failure path writes: what failed, when, on which attempt."""
    return ErrorEntry(at=now, type=type, message=message[:4096], attempt=attempt,
                      traceback=traceback)


#: The option a `gather` child carries, so the service that ends it knows to ring the others
#: (the parent it may wake can run on another service).
FANIN = "fanin"
#: Outcome.extra: when a held attempt began (wall clock): its outcome's write counts the
#: attempt, and one that misses (the job cancelled meanwhile) writes its `began` first.
BEGAN = "began"


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
    concurrency_key: str | None = None  # from the task's concurrency_key format


@dataclass
class Outcome:
    """The end of one attempt, recorded in a batch."""

    id: int
    token: int
    state: str                     # succeeded | retrying | dead | cancelled | released | suspended
    result: str | None = None      # JSON, for succeeded
    run_at: float | None = None    # for retrying; for suspended (a workflow waits): its wake
    error: ErrorEntry | None = None
    extra: dict[str, Any] = field(default_factory=dict)

