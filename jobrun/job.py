"""The Job handle: a stored job's id, state, attempts, result and cancel."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from . import clock
from .errors import JobFailed, JobrunError
from .model import FINISHED, JobRecord, JobState

if TYPE_CHECKING:
    from .app import App

R = TypeVar("R", covariant=True)  # a Job[int] is a Job[object]: it only gives R out


class Job(Generic[R]):
    """A handle on one stored job. `state` and `attempts` are as of the last refresh.

    `Job[R]`: `R` is its task's return type (`Any` for a job enqueued or read by name), so
    a type checker knows what `result()` returns. Nothing checks it at run time."""

    def __init__(self, app: App, job_id: int, state: JobState | None = None,
                 attempts: int = 0) -> None:
        self.app = app
        self.id = job_id
        self._state = state
        self._attempts = attempts
        self._record: JobRecord | None = None

    @property
    def state(self) -> JobState:
        if self._state is None:
            self.refresh()
        assert self._state is not None
        return self._state

    @property
    def attempts(self) -> int:
        return self._attempts

    @property
    def record(self) -> JobRecord:
        if self._record is None:
            self.refresh()
        assert self._record is not None
        return self._record

    def refresh(self) -> Job[R]:
        rec = self.app.store.get(self.id)
        if rec is None:
            raise JobrunError(f"job {self.id} does not exist (pruned, or its enqueue was never committed)")
        self._record, self._state, self._attempts = rec, rec.state, rec.attempts
        return self

    def result(self, timeout: float | None = 10.0) -> R:
        """Wait for the job to finish; its return value, JobFailed, or TimeoutError."""
        deadline = None if timeout is None else clock.monotonic() + timeout
        pause = 0.001
        while True:
            row = self.app.store.status(self.id)
            if row is None:
                raise JobrunError(f"job {self.id} does not exist (pruned, or its enqueue was never committed)")
            state, attempts, result, errors = row
            self._state, self._attempts = JobState(state), attempts
            if state == "succeeded":
                return cast(R, None if result is None else json.loads(result))
            if state in ("dead", "cancelled"):
                errs = json.loads(errors)
                last = f": {errs[-1]['type']}: {errs[-1]['message']}" if errs else ""
                raise JobFailed(f"job {self.id} is {state}{last}", self, errs)
            if deadline is not None and clock.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} not finished after {timeout}s (state {state})")
            wait = pause if deadline is None else min(pause, max(0.0, deadline - clock.monotonic()))
            time.sleep(wait)
            pause = min(pause * 2, 0.05)

    def cancel(self) -> bool:
        """Cancel now if waiting; if running, ask it to stop. False if already finished."""
        before = self.app.store.cancel(self.id, now=clock.now())
        if before is None:
            raise JobrunError(f"job {self.id} does not exist")
        self._state = None
        return before not in {s.value for s in FINISHED}

    def __repr__(self) -> str:
        return f"<Job {self.id} {self._state.value if self._state else '?'}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id and other.app is self.app

    def __hash__(self) -> int:
        return hash(self.id)
