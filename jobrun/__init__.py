"""jobrun: a background job runner for single-host Python apps. See CONTRACT.md for the API."""

from .app import App, Call, Job, Task
from .context import Context, context
from .errors import (
    ConfigError,
    Interrupted,
    InvalidJob,
    JobFailed,
    JobrunError,
    NonDeterministic,
    Permanent,
    Retry,
    StepFailed,
    StoreError,
    UnknownTask,
)
from .model import JobState
from .once import once
from .workflows import gather, sleep, wait_event

__version__ = "0.1.0"

__all__ = [
    "App",
    "Call",
    "ConfigError",
    "Context",
    "Interrupted",
    "InvalidJob",
    "Job",
    "JobFailed",
    "JobState",
    "JobrunError",
    "NonDeterministic",
    "Permanent",
    "Retry",
    "StepFailed",
    "StoreError",
    "Task",
    "UnknownTask",
    "context",
    "gather",
    "once",
    "sleep",
    "wait_event",
]
