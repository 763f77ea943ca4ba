"""`jobrun enqueue --file jobs.toml`: [[job]] tables -> Calls, all checked before any is stored.

A bad jobs file is not a configuration error (exit 78 would send the user to jobrun.toml):
it is refused (exit 1) with the file, the line and the [[job]] that is wrong.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from typing import Any

from .app import Call
from .errors import InvalidJob, JobrunError
from .options import BY_NAME, FILE_OPTIONS

_KEYS = {"task", "args", "kwargs"} | FILE_OPTIONS
# What each option must be (bool is an int to Python: refused apart).
_TYPES: dict[str, tuple[type, ...]] = {
    "queue": (str,), "key": (str,), "trace_id": (str,), "priority": (int,),
    "max_attempts": (int,), "delay": (int, float), "run_at": (dt.datetime,)}
_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*(?:job|\"job\"|'job')\s*\]\]", re.M)


class JobsFileError(JobrunError):
    """A jobs file that cannot be read or holds a malformed [[job]]: file, line, reason."""

    def __init__(self, message: str, *, file: str, line: int | None = None,
                 index: int | None = None) -> None:
        self.file, self.line, self.index, self.reason = file, line, index, message
        where = f"{file}:{line}" if line else file
        if index is not None:
            where += f": [[job]] #{index + 1}"
        super().__init__(f"{where}: {message}")


def _job_lines(text: str) -> list[int]:
    """The line of each [[job]] header, in order (TOML keeps the tables in file order)."""
    return [text.count("\n", 0, m.start()) + 1 for m in _HEADER.finditer(text)]


def _check(t: dict[str, Any]) -> str | None:
    """What is wrong with one [[job]] table, if anything."""
    unknown = set(t) - _KEYS
    if unknown:
        return f"unknown key(s) {sorted(unknown)} (known: {', '.join(sorted(_KEYS))})"
    if not isinstance(t.get("task"), str):
        return 'every [[job]] needs task = "NAME"'
    if not isinstance(t.get("args", []), list) or not isinstance(t.get("kwargs", {}), dict):
        return "args must be an array and kwargs a table"
    for k, types in _TYPES.items():
        if k in t and (isinstance(t[k], bool) or not isinstance(t[k], types)):
            want = "a datetime (e.g. 2030-01-01T09:00:00Z)" if k == "run_at" else \
                " or ".join(ty.__name__ for ty in types)
            return f"{k} must be {want}, not {t[k]!r}"
    if isinstance(t.get("delay"), (int, float)) and t["delay"] < 0:
        return f"delay must be >= 0 seconds, not {t['delay']!r}"
    if isinstance(t.get("max_attempts"), int) and t["max_attempts"] < 1:
        return f"max_attempts must be >= 1, not {t['max_attempts']!r}"
    for k in FILE_OPTIONS & set(t):  # the options' own checks, here to name the file and line
        try:
            BY_NAME[k].check(t[k])
        except InvalidJob as exc:
            return str(exc)
    return None


def load_calls(path: str) -> list[Call]:
    try:
        with open(path, "rb") as f:
            raw = f.read()
        text = raw.decode("utf-8")
    except OSError as exc:
        raise JobsFileError(f"cannot read the jobs file: {exc.strerror}", file=path) from exc
    except UnicodeDecodeError as exc:
        raise JobsFileError(f"not UTF-8 text: {exc}", file=path) from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise JobsFileError(f"not valid TOML: {exc}", file=path) from exc
    jobs = doc.get("job")
    if not isinstance(jobs, list) or not jobs:
        raise JobsFileError("no [[job]] tables", file=path)
    lines = _job_lines(text)
    calls = []
    for i, t in enumerate(jobs):
        problem = _check(t)
        if problem:
            raise JobsFileError(problem, file=path, index=i,
                                line=lines[i] if i < len(lines) else None)
        run_at = t.get("run_at")
        if isinstance(run_at, dt.datetime) and run_at.tzinfo is None:
            t["run_at"] = run_at.replace(tzinfo=dt.UTC)  # a naive time means UTC
        opts = {k: t[k] for k in _KEYS - {"task", "args", "kwargs"} if k in t}
        calls.append(Call(t["task"], tuple(t.get("args", [])), t.get("kwargs", {}), opts))
    return calls
