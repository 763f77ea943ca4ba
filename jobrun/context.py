"""`jobrun.context()`: what a running job knows about itself."""

from __future__ import annotations

import contextvars
from collections.abc import Callable

from .errors import JobrunError


class Context:
    """The running attempt: ids, attempt number, trace id, and cancellation."""

    __slots__ = (
        "_cancelled",
        "_heartbeat",
        "attempt",
        "handed_back",
        "job_id",
        "queue",
        "store",
        "task",
        "token",
        "trace_id",
        "withdrawn",
    )

    def __init__(self, job_id: int, attempt: int, task: str, trace_id: str | None, queue: str,
                 token: int, heartbeat: Callable[[int, int], bool] | None = None,
                 store: str | None = None) -> None:
        self.store = store
        self.job_id = job_id
        self.attempt = attempt
        self.task = task
        self.trace_id = trace_id
        self.queue = queue
        self.token = token
        self._cancelled = False
        self.handed_back = False  # stopped by a drain: the job goes back to queued
        self.withdrawn = False    # held, not begun, and a drain began: it must not begin
        self._heartbeat = heartbeat

    @property
    def cancelled(self) -> bool:
        """True once the attempt should stop: the job was cancelled or taken back (its result
        is discarded), or the service is stopping (see `stopping`)."""
        return self._cancelled

    @property
    def stopping(self) -> bool:
        """True when the service is draining and this attempt did not finish in time: stop
        soon; whatever it returns or raises, the job is handed back to `queued` (attempt not
        counted) and runs again. Tells a drain apart from an operator's cancel."""
        return self.handed_back

    def cancel(self, *, hand_back: bool = False) -> None:
        """Ask the attempt to stop; `hand_back` (a drain) means its job is queued again."""
        self.handed_back = self.handed_back or hand_back
        self._cancelled = True

    def withdraw(self) -> None:
        """A drain began while this held attempt waited: it goes back without starting.
        Unlike a cancel it stops nothing: begun meanwhile, it runs and its outcome stands."""
        self.withdrawn = True

    def heartbeat(self) -> bool:
        """Renew this attempt's lease now; False if the job is no longer ours."""
        if self._heartbeat is None:
            return not self._cancelled
        ok = self._heartbeat(self.job_id, self.token)
        if not ok:
            self._cancelled = True
        return ok

    def __repr__(self) -> str:
        return f"Context(job_id={self.job_id}, attempt={self.attempt}, task={self.task!r})"


_current: contextvars.ContextVar[Context | None] = contextvars.ContextVar("jobrun_context",
                                                                          default=None)


def context() -> Context:
    """The Context of the job running in this thread (or task); JobrunError outside one."""
    ctx = _current.get()
    if ctx is None:
        raise JobrunError("jobrun.context() called outside a running job")
    return ctx


def current() -> Context | None:
    return _current.get()


def set_current(ctx: Context | None) -> contextvars.Token[Context | None]:
    return _current.set(ctx)


def reset(token: contextvars.Token[Context | None]) -> None:
    _current.reset(token)
