"""What bench_core.py and bench_process.py share: a service subprocess, reading the store,
CPU seconds from /proc, percentiles, py-spy, the report and its markdown table.

One copy of each, so that the two benchmarks measure and print the same way. This module
never imports the stdlib sqlite3: a process that runs jobrun reads its store through apsw
(two SQLite copies on one file in one process break each other's POSIX locks).
"""

from __future__ import annotations

import linecache
import math
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
POLL = 0.02  # completion counts are polled this often from another connection


def log(msg: str) -> None:
    print(msg, flush=True)


def fmt(value: float | None, unit: str) -> str:
    """A table cell: jobs/s with thousands separators, ms/%/us with their unit."""
    if value is None:
        return "-"
    if unit == "jobs/s":
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "us":
        return f"{value:,.0f} us"
    return f"{value:.3g}"


def pct(xs: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def rate(n: int, fn: Callable[[], Any]) -> float:
    """n / the seconds fn takes."""
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------------------
# CPU seconds from /proc
# ---------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), from /proc/PID/stat; None once gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()  # fields[0] is field 3 (state)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of(pids: list[int]) -> float | None:
    """The CPU seconds of all of pids together; None when any is gone."""
    values = [cpu_seconds(p) for p in pids]
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def idle_cpu_percent(pid: int, seconds: float) -> float:
    """The % of one core that pid uses over `seconds` of this process sleeping."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    used = delta(before, cpu_seconds(pid))
    if used is None:
        raise RuntimeError(f"process {pid} ended during the idle CPU measure")
    return used / seconds * 100


# ---------------------------------------------------------------------------------------
# A service subprocess, and reading its store
# ---------------------------------------------------------------------------------------
class Subprocess:
    """A service subprocess whose stderr goes to a log file: stop() and errors() read it."""

    def __init__(self, argv: list[str], log_path: str, *, stop_wait: float,
                 stdin: int | None = None, stdout: int | None = None, cwd: str | None = None,
                 env: dict[str, str] | None = None, text: bool = False) -> None:
        self.log_path = log_path
        self.stop_wait = stop_wait
        self._log = open(log_path, "w")
        self.proc: subprocess.Popen[Any] = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=stdin,
            stdout=self._log if stdout is None else stdout, stderr=self._log, text=text)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> str:
        """SIGTERM, wait; returns its log (empty when it said nothing)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.stop_wait)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.errors()

    def errors(self) -> str:
        with open(self.log_path) as f:
            return f.read().strip()


def open_apsw(db: str) -> Any:
    """A reader connection through apsw: the SQLite copy jobrun uses."""
    import apsw

    conn = apsw.Connection(db)
    conn.set_busy_timeout(30_000)
    return conn


def poll_count(conn: Any, sql: str, params: tuple[Any, ...], n: int, timeout: float,
               alive: Callable[[], bool] | None = None,
               interval: float = POLL) -> tuple[float, int]:
    """Poll `sql` (a count) until it reaches n, the deadline passes or the service dies:
    (wall time seen, count)."""
    deadline = time.monotonic() + timeout
    while True:
        count = conn.execute(sql, params).fetchone()[0]
        now = time.time()
        if count >= n or time.monotonic() > deadline or (alive is not None and not alive()):
            return now, count
        time.sleep(interval)


def job_states(conn: Any, first: int | None = None, last: int | None = None
               ) -> dict[str, int]:
    """Jobs per state, of all jobs or of the ids in [first, last]."""
    if first is None or last is None:
        return dict(conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
    return dict(conn.execute("SELECT state, count(*) FROM jobs WHERE id BETWEEN ? AND ? "
                             "GROUP BY state", (first, last)).fetchall())


# ---------------------------------------------------------------------------------------
# py-spy
# ---------------------------------------------------------------------------------------
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
# The report
# ---------------------------------------------------------------------------------------
@dataclass
class Row:
    """One table row: jobrun's value beside the other side's (Huey, the bare pool)."""

    metric: str
    jobrun: float | None
    other: float | None
    unit: str
    target: str = "info"
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        if self.jobrun is None or not self.other:
            return None
        return self.jobrun / self.other

    def as_dict(self, other: str) -> dict[str, Any]:
        """For --json: the fields, `other` under the other side's name, and the ratio."""
        return {(other if k == "other" else k): v for k, v in vars(self).items()} | {
            "ratio": self.ratio}


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row


def markdown(rows: list[Row], other: str) -> str:
    """The closing table: metric | jobrun | <other> | ratio | target | met?."""
    out = [f"| metric | jobrun | {other} | ratio | target | met? |", "|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        met = "-" if r.met is None else ("yes" if r.met else "**no**")
        out.append(f"| {r.metric} | {fmt(r.jobrun, r.unit)} | {fmt(r.other, r.unit)} | {ratio} "
                   f"| {r.target} | {met} |")
    return "\n".join(out)


def print_notes(notes: list[str]) -> None:
    for note in notes:
        log(f"- {note}")


def print_problems(problems: list[str]) -> None:
    if problems:
        log("\n### Problems seen")
        for p in problems:
            log(f"- {p}")


def finish(tmp: str, keep: bool, report: Report) -> None:
    """After the runs: the load average at the end, and the temp dir kept or removed."""
    report.notes.append(f"load average (1/5/15 min) at the end: {load_average()}")
    if keep:
        log(f"(kept {tmp})")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def tree_state() -> str:
    """The commit measured, and how many tracked files differ from it."""
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no",
                                "jobrun"], capture_output=True, text=True, timeout=10,
                               check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    n = len(dirty.splitlines())
    return f"{head or '?'}" + (f" + {n} modified file(s) under jobrun/" if n else " (clean)")


def machine_line(sqlite: str) -> str:
    """CPUs, processor, Python, and the SQLite versions (`sqlite`: who uses which)."""
    import platform

    return (f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
            f"Python {platform.python_version()}, SQLite {sqlite}")
