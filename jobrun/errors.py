"""Exceptions of jobrun.

    JobrunError                 base of every error jobrun raises on its own
    ├── ConfigError             a bad jobrun.toml or option; names file, key, line, reason
    ├── StoreError              the SQLite store refused (not a database, too new, disk full)
    ├── InvalidJob              a refused payload, argument or option (also a TypeError)
    │   └── InvalidValue        a value of the right type refused (also a ValueError)
    ├── NotInWorkflow           a workflow call outside a body (also a RuntimeError)
    ├── JobFailed               Job.result() of a dead or cancelled job
    ├── UnknownTask             a task name no service declares (at enqueue: close matches)
    ├── StepFailed              a workflow step failed for good (raised in the body)
    ├── NonDeterministic        a workflow replay called another step than the one recorded
    ├── TaskTimeout             an attempt ran past its timeout (and was stopped if it could be)
    └── WorkerDied              the child process running an attempt died (signal or exit)

Raised by tasks to steer retries (not JobrunErrors: they are signals, not failures of jobrun):

    Retry(delay=None)           retry; counts as an attempt
    Permanent(msg)              give up now: the job goes to `dead`
    Interrupted()               the service is stopping (`context().stopping`): hand me back
"""

from __future__ import annotations

from typing import Any


class JobrunError(Exception):
    """Base of every error jobrun raises."""


class ConfigError(JobrunError):
    """A configuration problem; the message names the file, key (and line) and the reason."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None,
                 line: int | None = None) -> None:
        self.reason = message
        self.file = file
        self.key = key
        self.line = line
        where = ""
        if file:
            where = str(file)
            if line:
                where += f":{line}"
        if key:
            where = f"{where}: [{key}]" if where else f"[{key}]"
        super().__init__(f"{where}: {message}" if where else message)


class StoreError(JobrunError):
    """The store cannot be used: not a SQLite file, from a newer jobrun, full, or failing."""


class InvalidJob(JobrunError, TypeError):
    """A payload, argument or option refused at enqueue (not JSON, a missing argument, a
    boolean priority, ...): nothing was stored. A `TypeError` too, so `except TypeError`
    keeps working, while callers can tell a refusal from a bug."""


class InvalidValue(InvalidJob, ValueError):
    """A value of the right type refused (a naive datetime, a negative duration, a rate that
    does not parse): a `ValueError` too, as such refusals were."""


class NotInWorkflow(JobrunError, RuntimeError):
    """A workflow call made where it cannot work (`jobrun.step` outside a body, a workflow
    called directly inside another): a `RuntimeError` too, as the contract says."""


class JobFailed(JobrunError):
    """The job ended `dead` or `cancelled`; `.job` is its handle, `.errors` its history."""

    def __init__(self, message: str, job: Any = None, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.job = job
        self.errors = errors or []


class UnknownTask(JobrunError):
    """A task name that no service declares: at enqueue (naming the closest known names),
    or for a stored job whose task no live or recent service runs (it goes dead)."""


class StepFailed(JobrunError):
    """A workflow step failed after its attempts; raised in the workflow body."""


class NonDeterministic(JobrunError):
    """A workflow replay called a different step than the one recorded at that point."""


class Retry(Exception):
    """Raise inside a task to retry it, after `delay` seconds or the backoff's choice."""

    def __init__(self, delay: float | None = None, message: str = "") -> None:
        super().__init__(message or (f"retry requested in {delay}s" if delay is not None else "retry requested"))
        self.delay = delay


class Permanent(Exception):
    """Raise inside a task when retrying cannot help: the job goes to `dead` at once."""


class Interrupted(Exception):
    """Raise inside a task that saw `context().stopping`: the service is draining, and the
    job goes back to `queued` without counting the attempt (any outcome of an attempt that
    was told to stop is handed back; this one just says so)."""

    def __init__(self, message: str = "interrupted: the service is stopping") -> None:
        super().__init__(message)


class TaskTimeout(JobrunError):
    """An attempt ran past its `timeout`; it failed and retries like any failure."""


class ImportFailed(JobrunError):
    """A task module failed to import in a process child though the service imports it: its
    jobs are retried (a deploy half done, a missing file), and the error says why."""


class WorkerDied(JobrunError):
    """The child process running an attempt died: "worker process died: signal 11"."""
