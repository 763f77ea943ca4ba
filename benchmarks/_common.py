"""What the benchmarks share: a service subprocess and its environment, reading the store,
CPU seconds from /proc, percentiles, the report, its notes, its JSON and its markdown table
(py-spy is _profile.py's).

One copy of each, so that the benchmarks measure and print the same way. This module
never imports the stdlib sqlite3: a process that runs jobrun reads its store through apsw
(two SQLite copies on one file in one process break each other's POSIX locks).
"""

from __future__ import annotations

import argparse
import json
import math
import os
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
NOISE = "other work on this machine adds noise: compare within one run"


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


def child_env(*, here: bool = False, **more: str) -> dict[str, str]:
    """This environment for a benchmark's subprocess, without the JOBRUN_* variables (the
    child reads only the config or store it is handed); benchmarks/ first on PYTHONPATH when
    `here` (the task modules beside this file); `more` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBRUN_")}
    if here:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, env.get("PYTHONPATH")) if p)
    return env | more


def console_script(name: str) -> list[str] | None:
    """[this Python, the `name` script installed beside it]: what a user runs; None when it
    is not installed."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    return [sys.executable, path] if os.path.exists(path) else None


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


def write_json(path: str | None, report: Report, other: str, **more: Any) -> None:
    """--json PATH: the rows (`other`: the other side's name), notes, problems, and `more`."""
    if not path:
        return
    with open(path, "w") as f:
        json.dump({"rows": [r.as_dict(other) for r in report.rows], "notes": report.notes,
                   "problems": report.problems, **more}, f, indent=2, default=str)


def close_report(report: Report, other: str, json_path: str | None, about: str = "",
                 **more: Any) -> None:
    """A report's end: its problems, --json, its last note (the load at the end), `about`
    (how to read the ratios), and the table."""
    print_problems(report.problems)
    write_json(json_path, report, other, **more)
    log(f"- {report.notes[-1]}")
    log(f"\n{about}\n" if about else "")
    log(markdown(report.rows, other))


def output_options(p: argparse.ArgumentParser, keep: str = "keep the temp dir") -> None:
    """The --json and --keep options of a benchmark that writes a report."""
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--keep", action="store_true", help=keep)


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


def machine_notes(tmp: str | None, *, huey: str | None = None,
                  remark: str | None = NOISE) -> list[str]:
    """A report's first notes: the machine, the code measured (and `tmp`, the temp dir), the
    load average at the start (`remark` after it). `huey`: the stdlib sqlite3's version,
    from a benchmark beside Huey (this module does not import sqlite3)."""
    import apsw

    import jobrun

    sqlite, peer = f"{apsw.sqlite_lib_version()} (apsw)", ""
    if huey is not None:
        from importlib.metadata import version

        sqlite = f"{apsw.sqlite_lib_version()} (apsw, jobrun) and {huey} (stdlib sqlite3, huey)"
        peer = f", huey {version('huey')}"
    load = f"load average (1/5/15 min) at the start: {load_average()}"
    return [machine_line(sqlite),
            f"jobrun {jobrun.__version__} at {tree_state()}{peer}"
            + ("" if tmp is None else f"; temp dir {tmp}"),
            load + ("" if remark is None else f" ({remark})")]
