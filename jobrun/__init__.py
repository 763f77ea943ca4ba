"""jobrun: a background job runner for single-host Python apps. See CONTRACT.md for the API.

The public names are loaded on first use (PEP 562), so `jobrun ls` or a module importing
`jobrun.store` does not pay for the App, the executors and asyncio it never uses.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# public name -> the module that defines it
_HOME = {
    "App": "app", "Call": "app", "Job": "app", "Task": "app",
    "Context": "context", "context": "context",
    "ConfigError": "errors", "Interrupted": "errors", "InvalidJob": "errors",
    "JobFailed": "errors", "JobrunError": "errors", "NonDeterministic": "errors",
    "Permanent": "errors", "Retry": "errors", "StepFailed": "errors", "StoreError": "errors",
    "UnknownTask": "errors",
    "JobState": "model", "once": "once",
    "gather": "workflows", "sleep": "workflows", "wait_event": "workflows",
}

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


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'jobrun' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])


class _Package(types.ModuleType):
    """`jobrun.once` and `jobrun.context` are functions, as when they were imported eagerly.

    Loading a submodule sets it as an attribute of its package; the submodules `once` and
    `context` would then hide the functions of the same name that `__getattr__` finds."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _HOME and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

