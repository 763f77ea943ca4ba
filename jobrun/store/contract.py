"""The store contract: what every caller (service, scheduler, producers, CLI, dashboard) is
typed against. Read it and you know the delivery model; a second store (PostgreSQL)
implements it once.

Delivery is at-least-once, fenced. A worker *acquires* a job: the job becomes `running`
under a holder (one service process) with a fencing token and a lease, and its attempt is
counted. The attempt's end is *recorded* only while it still holds that token: a job that was
cancelled, or taken back from a dead or stuck holder, refuses a late result. A live holder
*extends* its leases; a dead holder (its liveness lock is free) or an expired lease is
*rescued*: its running jobs go back to `queued` (or `dead` when their attempts are spent).
A drain *releases* jobs: back to `queued` with the attempt not counted.

Every method is one transaction unless it says otherwise.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..limits import Limits
from ..model import Claim, Declaration, JobRecord, NewJob, Outcome


class Rescued(NamedTuple):
    """A job a rescue took back: its new state is `queued`, or `dead` when its attempts
    are spent."""

    id: int
    task: str
    queue: str
    attempts: int
    state: str
    unspent: bool = False  # held and never begun: back as it was, no attempt, no error


class Expired(NamedTuple):
    """A running job whose lease ran out, and the holder it ran out under."""

    id: int
    holder: str


class AttemptState(NamedTuple):
    """A job's state and current fencing token (None: no attempt holds it)."""

    state: str
    token: int | None


class Status(NamedTuple):
    """What `Job.result()` polls: the job's state, attempts, result and errors (JSON)."""

    state: str
    attempts: int
    result: str | None
    errors: str


class ChildResult(NamedTuple):
    """A workflow child's end (state None: the job is gone); errors is a JSON list."""

    id: int
    state: str | None
    result: str | None
    errors: str

#: One of the dashboard's named reads: (block name, parameters) -> rows keyed by column name.
DashboardRead = Callable[[str, dict[str, Any]], list[dict[str, Any]]]


@dataclass
class Round:
    """What one acquire round hands back."""

    claims: list[Claim]
    next_due: float | None             # the earliest scheduled/retrying run_at
    recorded: int                      # outcomes that still held their lease
    paused: frozenset[str]
    retry_in: float | None = None      # a rate limit held jobs back: look again after this
    applied: frozenset[int] = frozenset()  # tokens of the outcomes recorded (the rest: fenced)


class LeaseStore(abc.ABC):
    """The worker's verbs: acquire, record, extend, rescue, release."""

    path: str

    @abc.abstractmethod
    def enqueue(self, jobs: list[NewJob], *, connection: Any = None, now: float) -> list[int]:
        """Insert jobs, all or none; with `connection`, inside the caller's open transaction
        (they commit or roll back with the caller's rows). A job whose task already has an
        unfinished job with the same key gets that job's id instead of a new row. Ids are
        never reused."""

    @abc.abstractmethod
    def acquire_round(self, outcomes: list[Outcome], wants: dict[str, int], holder: str, *,
                      now: float, lease: float, full: bool = True,
                      paused: frozenset[str] = frozenset(), next_due: float | None = None,
                      limits: Limits | None = None, limited: frozenset[str] = frozenset(),
                      tasks: frozenset[str] | None = None, ahead: dict[str, int] | None = None,
                      began: list[tuple[int, int, float]] | None = None) -> Round:
        """Record `outcomes` (fenced), then acquire up to `wants[queue]` queued jobs per
        queue for `holder`, only of `tasks` (None: any), highest priority then oldest first,
        within the host-wide caps, key limits and rate limits of `limits` (for the queues in
        `limited`), skipping paused queues. A full round also promotes due scheduled and
        retrying jobs and reads the paused queues and the next due time; a light one trusts
        the caller's. A stored row that cannot be read goes dead alone (BadPayload).

        Held claims: `ahead[queue]` more jobs are then claimed *held* (Claim.held), for a
        service that serves the queue alone and claims ahead of its free workers (in a
        `limited` queue only jobs of `tasks` (given) no rate or key limit counts: free_tasks;
        beyond the host-wide cap, which counts them as running). A
        held row is `running` with `started_at` NULL and its attempt not counted; `began`
        lists (id, token, started at) of held attempts that started since: from then on they
        count. An outcome of a held attempt counts it; a release or a suspend of one that never
        began puts it back as it was; a rescue counts it as begun unless shown otherwise
        (rescue_holder's `begun`)."""

    @abc.abstractmethod
    def record(self, outcomes: list[Outcome], *, now: float) -> int:
        """Record attempts' ends alone (a drain, a late result); how many still held their
        lease. `released` outcomes put the job back to queued, the attempt not counted."""

    @abc.abstractmethod
    def record_outcomes(self, outcomes: list[Outcome], *, now: float) -> frozenset[int]:
        """As `record`; the tokens of the outcomes recorded (the others were fenced off)."""

    @abc.abstractmethod
    def extend_leases(self, holder: str, *, now: float, lease: float) -> int:
        """Renew every lease `holder` has: until now + lease. How many."""

    @abc.abstractmethod
    def extend_lease(self, job_id: int, token: int, *, now: float, lease: float) -> bool:
        """Renew one attempt's lease (a heartbeat); False if the job is no longer its own."""

    @abc.abstractmethod
    def running_holders(self) -> list[str]:
        """The holders with running jobs (some may be dead: ask their locks)."""

    @abc.abstractmethod
    def rescue_holder(self, holder: str, reason: str, *, now: float,
                      begun: frozenset[int] | None = None) -> list[Rescued]:
        """A dead holder's running jobs go back to queued (attempt counted, an error entry
        naming `reason` and the attempt), or dead if their attempts are spent. Its held jobs
        count as begun, unless `begun` (the tokens its began log holds: jobrun/began.py)
        shows one never did: that one goes back as it was (Rescued.unspent)."""

    @abc.abstractmethod
    def expired_leases(self, *, now: float) -> list[Expired]:
        """(job id, holder) of running jobs whose lease ended before `now`."""

    @abc.abstractmethod
    def rescue_expired(self, job_id: int, reason: str, *, now: float) -> list[Rescued]:
        """Take back one job whose lease expired (a holder alive but stuck), as a rescue."""

    @abc.abstractmethod
    def acquire_job(self, job_id: int, holder: str, *, now: float, lease: float
                    ) -> Claim | None:
        """Acquire one given waiting job whatever its run_at (inline mode); None if it is not
        waiting."""

    @abc.abstractmethod
    def attempt_states(self, ids: list[int]) -> dict[int, AttemptState]:
        """Job id -> (state, token) for these jobs: whether attempts still hold their jobs."""


class CatalogStore(abc.ABC):
    """What services run: published by them, resolved against by by-name producers."""

    @abc.abstractmethod
    def publish_catalog(self, holder: str, entries: dict[str, str], *, now: float) -> None:
        """`holder` runs these tasks (task -> JSON of a job's defaults), replacing what it
        declared before."""

    @abc.abstractmethod
    def touch_catalog(self, holder: str, *, now: float) -> None:
        """A clean stop: `holder` ran its tasks until `now`."""

    @abc.abstractmethod
    def forget_catalog(self, holder: str, *, before: float) -> None:
        """Drop `holder`'s declarations older than `before`."""

    @abc.abstractmethod
    def catalog(self) -> list[Declaration]:
        """Every declaration, newest first per task."""

    @abc.abstractmethod
    def catalog_born(self) -> float | None:
        """When a service first declared tasks here; None if none ever did."""

    @abc.abstractmethod
    def queued_pairs(self) -> list[tuple[str, str]]:
        """Every (queue, task) that has queued jobs."""

    @abc.abstractmethod
    def dead_unknown(self, queue: str, task: str, message: str, *, now: float,
                     limit: int = 500) -> list[int]:
        """Up to `limit` queued jobs of a task that nobody runs go dead (UnknownTask)."""


class CronStore(abc.ABC):
    """Cron fires: one row per (entry, due time), written with its job."""

    @abc.abstractmethod
    def last_fire(self, entry: str) -> float | None:
        """The latest due time fired for `entry`."""

    @abc.abstractmethod
    def fire(self, entry: str, fire_at: float, job: Callable[[], NewJob], *, now: float
             ) -> int | None:
        """Fire `entry` for `fire_at` once: the job `job()` makes is stored with the fire's
        row; its id, or None if that due time had fired already (another leader overlapped:
        then `job` is not called)."""


class OperatorStore(abc.ABC):
    """Reads and actions of operators (CLI, dashboard, Job handles). Reads are lenient: a
    malformed row is shown as its raw text, never hides the others."""

    @abc.abstractmethod
    def get(self, job_id: int) -> JobRecord | None: ...

    @abc.abstractmethod
    def status(self, job_id: int) -> Status | None:
        """What `Job.result()` polls, in one indexed read."""

    @abc.abstractmethod
    def list_jobs(self, *, state: str | None = None, queue: str | None = None,
                  limit: int = 50) -> list[JobRecord]:
        """Newest first."""

    @abc.abstractmethod
    def cancel(self, job_id: int, *, now: float) -> str | None:
        """A waiting job is cancelled at once; a running one is marked so its holder stops
        it (its result is then refused). The state it was in; None if there is no such job."""

    @abc.abstractmethod
    def retry(self, job_id: int | None, *, now: float) -> list[int]:
        """A dead, cancelled or retrying job (or, with None, every dead one) back to queued."""

    @abc.abstractmethod
    def prune(self, before: float,
              states: tuple[str, ...] = ("succeeded", "cancelled", "dead"), *,
              batch: int = 500) -> int:
        """Delete finished jobs of `states` finished before `before`, in short batches."""

    @abc.abstractmethod
    def prune_job(self, job_id: int) -> bool:
        """Delete one finished job (prune's rule: never the newest); whether it was."""

    @abc.abstractmethod
    def set_concurrency(self, queue: str, n: int | None) -> None:
        """A queue's concurrency for every service, live (None: the config's again)."""

    @abc.abstractmethod
    def concurrency(self) -> dict[str, int]:
        """The queues given a live concurrency, and it."""

    @abc.abstractmethod
    def set_paused(self, queue: str, paused: bool) -> None: ...

    @abc.abstractmethod
    def paused(self) -> frozenset[str]: ...

    @abc.abstractmethod
    def queue_names(self) -> set[str]:
        """Queues the store knows: paused or resumed once, or where a declared task goes."""

    @abc.abstractmethod
    def queue_counts(self, *, since: float) -> dict[str, dict[str, Any]]:
        """Per queue: jobs per unfinished state and dead, the oldest queued run_at
        (`oldest_queued`), and the succeeded/dead finished since `since`."""

    @abc.abstractmethod
    def pending(self, horizon: float, tasks: frozenset[str] | None = None) -> int:
        """Jobs that will still run: queued or running, or waiting due before `horizon`."""

    @abc.abstractmethod
    def counts(self) -> dict[str, int]:
        """Jobs per state."""

    @abc.abstractmethod
    def explain_facts(self, job_id: int, queue: str, priority: int
                      ) -> dict[str, Any]:
        """What `jobrun explain` reads: running in the queue, queued ahead of the job, its
        concurrency key and how many of that key run."""

    @abc.abstractmethod
    def bucket(self, name: str) -> tuple[float, float] | None:
        """A rate-limit bucket's (tokens, at)."""


@dataclass
class StepRecord:
    """One recorded call of a workflow body: a step, a sleep, a wait, a gather, an enqueue."""

    seq: int                           # call order in the body, from 1
    name: str                          # the step function's name (jobrun.sleep, ...)
    kind: str                          # step | sleep | event | gather | enqueue
    state: str                         # succeeded | failed | waiting | retrying
    result: str | None = None          # JSON (a waiting gather: its child ids)
    error: dict[str, Any] | None = None
    attempts: int = 0
    started: float | None = None
    finished: float | None = None
    waits: str | None = None           # the event name of a wait_event
    until: float | None = None         # a sleep's end, a wait's timeout, a step retry's time


class WorkflowStore(abc.ABC):
    """Durable workflows: a body's step records, events, and the children a body starts.

    Writes made by a running body are fenced like outcomes: they happen only while the attempt
    (`job_id`, `token`) still holds its job; False (or None) when it does not."""

    @abc.abstractmethod
    def steps(self, job_id: int) -> list[StepRecord]:
        """A workflow's recorded steps, in call order."""

    @abc.abstractmethod
    def record_step(self, job_id: int, token: int, step: StepRecord) -> bool:
        """Write (or overwrite) the record at `step.seq`."""

    @abc.abstractmethod
    def holds(self, job_id: int, token: int) -> bool:
        """Whether the attempt still holds its job (a read)."""

    @abc.abstractmethod
    def record_steps(self, job_id: int, token: int, steps: list[StepRecord], *,
                     last: bool = False) -> bool:
        """Write (or overwrite) these records in one transaction: all of them or none.
        `last`: a body's final records, the attempt's outcome commit follows (a store may
        leave their durability to that commit)."""

    @abc.abstractmethod
    def wait_event(self, job_id: int, token: int, step: StepRecord, *, now: float
                   ) -> tuple[str, str | None]:
        """A wait_event step: take the oldest untaken event of `step.waits` ("taken", its
        payload JSON), else at its timeout `step.until` ("timeout", None), else record the
        step waiting ("waiting", None); ("fenced", None) if the attempt lost its job."""

    @abc.abstractmethod
    def start_children(self, job_id: int, token: int, step: StepRecord, jobs: list[NewJob],
                       *, fanin: bool, now: float) -> list[int] | None:
        """Insert the jobs a body starts as children of `job_id` (`fanin`: a gather, whose
        last child to finish wakes the parent) with the step that records their ids."""

    @abc.abstractmethod
    def child_results(self, ids: list[int]) -> list[ChildResult]:
        """Each child's end, in the order given."""

    @abc.abstractmethod
    def send_event(self, name: str, payload: str, *, connection: Any = None, now: float
                   ) -> int:
        """Store an event (payload: JSON text), waking the workflows that wait for its name;
        with `connection`, inside the caller's open transaction. Its id."""

    @abc.abstractmethod
    def children(self, job_id: int) -> list[int]:
        """The jobs a workflow body started, oldest first."""

    @abc.abstractmethod
    def open_children(self, job_id: int) -> int:
        """How many gathered children of a workflow are not finished."""

    @abc.abstractmethod
    def waiting_step(self, job_id: int) -> StepRecord | None:
        """The step a suspended workflow waits on (a wait, or a step's retry)."""

    @abc.abstractmethod
    def parents(self, ids: list[int]) -> dict[int, int | None]:
        """Job id -> the workflow that started it (None: started from outside)."""


class DashboardStore(abc.ABC):
    """The console's reads (`jobrun top`): named blocks of the store's own dashboard SQL
    (store/dashboard.sql, store/postgres_dashboard.sql), the same names and columns on both
    stores, each answered by an index."""

    @abc.abstractmethod
    def dashboard(self) -> AbstractContextManager[DashboardRead]:
        """One read transaction: the numbers of a frame agree with each other. The reader
        runs a named block and returns its rows as dicts keyed by column name."""

    @abc.abstractmethod
    def schema(self) -> tuple[int, int]:
        """(the stored schema version, the one this jobrun migrates to), read without
        migrating: an operator must not upgrade a store under an older service."""


class Store(LeaseStore, CatalogStore, CronStore, OperatorStore, WorkflowStore, DashboardStore):
    """Everything a jobrun store does. `close()` releases its connections."""

    @abc.abstractmethod
    def close(self) -> None: ...
