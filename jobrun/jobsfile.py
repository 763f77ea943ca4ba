"""`jobrun enqueue --file jobs.toml`: [[job]] tables -> Calls, all checked before any is stored."""

from __future__ import annotations

import tomllib
from typing import Any

from .app import Call
from .errors import ConfigError

_KEYS = {"task", "args", "kwargs", "queue", "priority", "delay", "run_at", "key",
         "max_attempts", "trace_id"}


def load_calls(path: str) -> list[Call]:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=path) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=path) from exc
    jobs = doc.get("job")
    if not isinstance(jobs, list) or not jobs:
        raise ConfigError("no [[job]] tables", file=path, key="job")
    calls = []
    for i, t in enumerate(jobs):
        key = f"job.{i}"
        unknown = set(t) - _KEYS
        if unknown:
            raise ConfigError(f"unknown key(s) {sorted(unknown)}", file=path, key=key)
        if not isinstance(t.get("task"), str):
            raise ConfigError("every [[job]] needs task = \"NAME\"", file=path, key=key)
        args: Any = t.get("args", [])
        kwargs: Any = t.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ConfigError("args must be an array and kwargs a table", file=path, key=key)
        opts = {k: t[k] for k in _KEYS - {"task", "args", "kwargs"} if k in t}
        calls.append(Call(t["task"], tuple(args), kwargs, opts))
    return calls
