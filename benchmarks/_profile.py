"""py-spy for the benchmarks that take --profile (bench_core.py, bench_process.py): finding
and attaching it, reading its raw output into shares of busy samples, and printing them.

One copy, so that both benchmarks leave out the same waits and print their tables the same
way; apart from _common.py so that neither module grows past its size.
"""

from __future__ import annotations

import linecache
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from _common import ROOT, log

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


def find_py_spy() -> str | None:
    """$PY_SPY, py-spy on PATH, or the one beside this Python."""
    venv = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return os.environ.get("PY_SPY") or shutil.which("py-spy") or \
        (venv if os.path.exists(venv) else None)


def profiler_for(wanted: bool) -> str | None:
    """py-spy when --profile asked for it; says so when it is missing."""
    profiler = find_py_spy() if wanted else None
    if wanted and profiler is None:
        log("--profile: py-spy not found (pip install py-spy, or set $PY_SPY); skipping")
    return profiler


def start_py_spy(profiler: str, pid: int, out: str, *, hz: int, subprocesses: bool,
                 settle: float) -> subprocess.Popen[str]:
    """py-spy recording pid in raw (collapsed) form; `settle` s to attach before the clock."""
    spy = subprocess.Popen([profiler, "record", "--pid", str(pid),
                            *(["--subprocesses"] if subprocesses else []),
                            "--rate", str(hz), "--format", "raw", "--threads", "--nonblocking",
                            "-o", out], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
    time.sleep(settle)
    return spy


def stop_py_spy(spy: subprocess.Popen[str]) -> None:
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()


@dataclass
class Busy:
    """py-spy's samples of threads at work: (role, frames, count) each, outermost frame
    first; `idle` counts the samples left out as waiting."""

    samples: list[tuple[str, list[str], int]] = field(default_factory=list)
    total: int = 0
    idle: int = 0


def busy_samples(path: str, split: Callable[[str], tuple[str, list[str]]],
                 waits: Callable[[str, str], bool]) -> Busy:
    """Read py-spy's raw (collapsed) output. `split` turns a stack into (role, frames);
    `waits(role, source line)` says whether an innermost line is a wait. Samples with no
    Python frame are left out. Raises OSError when the file cannot be read."""
    busy = Busy()
    waiting: dict[tuple[str, str], bool] = {}
    with open(path) as f:
        lines = f.read().splitlines()
    for text in lines:
        stack, _, count_ = text.rpartition(" ")
        if not stack or not count_.isdigit():
            continue
        role, frames = split(stack)
        n = int(count_)
        if len(frames) < 2:  # a thread with no Python frame
            continue
        key = (role, frames[-1])
        if key not in waiting:
            waiting[key] = waits(role, frame_line(frames[-1]))
        if waiting[key]:
            busy.idle += n
            continue
        busy.total += n
        busy.samples.append((role, frames, n))
    return busy


def frame_line(frame: str) -> str:
    """The source line of a py-spy frame `func (file:line)` (file relative to sys.path)."""
    m = _FRAME.match(frame)
    if not m:
        return ""
    for root in [""] + [p for p in sys.path if p] + [ROOT]:
        path = os.path.join(root, m["file"])
        if os.path.exists(path):
            return linecache.getline(path, int(m["line"]))
    return ""


def function_of(frame: str) -> str:
    """`func (file:line)` -> `func (file)`: shares per function, not per line."""
    m = _FRAME.match(frame)
    return f"{m['func']} ({m['file']})" if m else frame


def shares(counts: dict[str, int], of: int, top: int) -> list[tuple[str, float]]:
    """The top entries of counts, as % of `of`."""
    return [(k, 100 * v / max(1, of))
            for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:top]]


def count(counts: dict[str, int], key: str, n: int) -> None:
    counts[key] = counts.get(key, 0) + n


def print_shares(title: str, rows: list[tuple[str, float]]) -> None:
    log(f"\n{title}:")
    for name, share in rows:
        log(f"  {share:5.1f}%  {name}")


# ---------------------------------------------------------------------------------------
# The summary of a run, and its printout
# ---------------------------------------------------------------------------------------
# A sample whose innermost line is one of these is a thread waiting, not working: select,
# a queue's get, Event.wait, sigwait, sleep, a pipe or lock, the selector a slot thread
# polls its child's pipe with, the child's read of its next job.
WAITING = re.compile(r"select\.select\(|\bget\(\)|\.wait\(|sigwait|sleep\(|readline\(|"
                     r"\.acquire\(|_selector\.poll\(|conn\.recv_bytes\(\)")
TABLES = ("self", "self by line", "inclusive")


def one_process(stack: str) -> tuple[str, list[str]]:
    """A stack of a single process: no role, its frames (the thread first)."""
    return "", stack.split(";")


def is_wait(_role: str, src: str) -> bool:
    """Whether a source line is one of WAITING (any role)."""
    return bool(WAITING.search(src))


def summarize_py_spy(path: str, *, top: int = 15,
                     split: Callable[[str], tuple[str, list[str]]] = one_process,
                     waits: Callable[[str, str], bool] = is_wait,
                     thread: Callable[[str, str], str] = lambda _role, first: first,
                     by_role: bool = False) -> dict[str, Any]:
    """Shares of busy samples per thread and per function (self, self by line, inclusive)
    from py-spy's raw output; waiting samples (`waits`) are left out. With `by_role`, also
    per process role (`split` names it) and the function tables per role, each as % of
    that role's samples; `thread(role, first frame)` names a sample's thread."""
    roles: dict[str, int] = {}
    threads: dict[str, int] = {}
    per_role: dict[str, dict[str, dict[str, int]]] = {}
    try:
        busy = busy_samples(path, split, waits)
    except OSError as exc:
        return {"error": str(exc)}
    for role, frames, n in busy.samples:
        count(threads, thread(role, frames[0]), n)
        role = role if by_role else ""
        count(roles, role, n)
        names = [function_of(fr) for fr in frames[1:]]
        d = per_role.setdefault(role, {t: {} for t in TABLES})
        count(d["self"], names[-1], n)
        count(d["self by line"], frames[-1], n)
        for name in set(names):
            count(d["inclusive"], name, n)
    tables = {r: {k: shares(v, roles[r], top) for k, v in d.items()}
              for r, d in per_role.items()}
    out: dict[str, Any] = {"samples": busy.total, "idle_samples": busy.idle}
    if by_role:
        return out | {"roles": shares(roles, busy.total, top),
                      "threads": shares(threads, busy.total, top), "by role": tables}
    return out | {"threads": shares(threads, busy.total, top)} | tables.get(
        "", {t: [] for t in TABLES})


def print_profile(prof: dict[str, Any], *, what: str, how: str, that_run: str) -> None:
    """The --profile section: where `what` spends its time (`how` it was sampled, and
    `that_run`'s result), then each table of shares."""
    if "error" in prof:
        log(f"py-spy profile unavailable: {prof['error']}")
        return
    log(f"\n### Where {what} spends its time ({how}, {prof['samples']} busy samples, "
        f"{prof['idle_samples']} waiting ones left out; that run: {that_run})")
    if "by role" not in prof:
        for title in ("threads", *TABLES):
            print_shares(f"{title} (% of busy samples)", prof[title])
        return
    print_shares("processes (% of busy samples)", prof["roles"])
    print_shares("threads (% of busy samples)", prof["threads"])
    for role, tables in prof["by role"].items():
        for title in TABLES:
            print_shares(f"{role}, {title} (% of that process kind's busy samples)",
                         tables[title])
