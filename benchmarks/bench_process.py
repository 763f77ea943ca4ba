#!/usr/bin/env python
"""Process-executor benchmark: jobrun's process queue against a bare ProcessPoolExecutor, in
the same run, on the same machine.

    .venv/bin/python benchmarks/bench_process.py            # full run (~2 min)
    .venv/bin/python benchmarks/bench_process.py --quick    # smaller N (~10 s)
    .venv/bin/python benchmarks/bench_process.py --profile  # + py-spy of service and children

Metrics (see benchmarks/README.md):
  1. no-op jobs/s through a `[queues.cpu] executor = "process"` queue, concurrency 2 and 4,
     completions recorded in the store (`state = 'succeeded'`), service started by
     `python -m jobrun.cli start --config CFG --log-level WARNING` in a subprocess
  2. the same no-op function through `concurrent.futures.ProcessPoolExecutor`: one `submit`
     per call (the reference: jobrun also hands its children one job at a time), and
     `executor.map` with multiprocessing.Pool's default chunksize (for scale)

Only the steady state is timed: service start-up, the forkserver and the children (which
start lazily, on a slot's first job) are warmed up by a small batch before the clock starts.
This process talks to the store through jobrun and apsw only, never the stdlib sqlite3.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # proc_tasks and _common, also when imported from elsewhere

from _common import (  # noqa: E402 (after the sys.path line above)
    POLL,
    Report,
    Row,
    Subprocess,
    child_env,
    close_report,
    cpu_of,
    cpu_seconds,
    delta,
    finish,
    log,
    machine_notes,
    open_apsw,
    output_options,
    poll_count,
    print_notes,
)
from _common import job_states as states  # noqa: E402
from _profile import (  # noqa: E402
    WAITING,
    print_profile,
    profiler_for,
    start_py_spy,
    stop_py_spy,
    summarize_py_spy,
)

TARGET = 0.60             # jobrun >= 60 % of the bare pool's per-call rate
MAIN_C = 2                # the machine's cores
CONCURRENCIES = (2, 4)
WARMUP_SLEEP = 0.3        # each warm-up job holds its worker this long: C jobs need C workers
DONE_SQL = "SELECT count(*) FROM jobs WHERE state = 'succeeded' AND id BETWEEN ? AND ?"
CONFIG = """\
# written by benchmarks/bench_process.py
[jobrun]
store = "jobs.db"
import = ["proc_tasks"]

[queues.cpu]
executor = "process"
concurrency = {c}
{p}"""
PREFETCH: dict[str, int | None] = {"n": None}  # --prefetch; None leaves it unset (the default)


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------
@dataclass
class Run:
    """One timed batch: n calls in `seconds`, and the CPU the two sides of it used."""

    n: int
    seconds: float
    parent_cpu: float | None = None    # the dispatching process: jobrun service / pool owner
    workers_cpu: float | None = None   # the children / pool workers, together
    per_round: float | None = None     # jobrun: jobs claimed per store round
    note: str = ""

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    def cpu_us(self, which: str) -> float | None:
        v = self.parent_cpu if which == "parent" else self.workers_cpu
        return None if v is None else v / self.n * 1e6

    def line(self) -> str:
        parts = [f"{self.rate:,.0f} jobs/s ({self.n:,} in {self.seconds:.2f} s)"]
        if self.parent_cpu is not None:
            parts.append(f"CPU/job: dispatcher {self.cpu_us('parent'):.0f} us, "
                         f"workers {self.cpu_us('workers'):.0f} us")
        if self.note:
            parts.append(self.note)
        return "; ".join(parts)


@dataclass
class Runs(Report):
    """The report, and every timed run by key: a row keeps the best of its runs."""

    runs: dict[str, list[Run]] = field(default_factory=dict)

    def keep(self, key: str, run: Run | None) -> None:
        if run is not None:
            self.runs.setdefault(key, []).append(run)

    def best(self, key: str) -> Run | None:
        runs = self.runs.get(key)
        return max(runs, key=lambda r: r.rate) if runs else None


# ---------------------------------------------------------------------------------------
# jobrun: `jobrun start` in a subprocess, a process queue of C children
# ---------------------------------------------------------------------------------------
class JobrunService(Subprocess):
    """`python -m jobrun.cli start --config CFG --log-level WARNING`, with benchmarks/ on
    PYTHONPATH so the service, its forkserver and its children import proc_tasks."""

    def __init__(self, config: str, folder: str) -> None:
        super().__init__([sys.executable, "-m", "jobrun.cli", "start", "--config", config,
                          "--log-level", "WARNING"], os.path.join(folder, "service.log"),
                         stop_wait=30, stdin=subprocess.DEVNULL, cwd=folder,
                         env=child_env(here=True))


def wait_succeeded(conn: Any, first: int, last: int, timeout: float,
                   alive: Any = None) -> tuple[float, int]:
    """Poll the count of succeeded jobs with ids in [first, last] until all are:
    (wall time seen, count)."""
    return poll_count(conn, DONE_SQL, (first, last), last - first + 1, timeout, alive, POLL)


def warm_up_jobrun(app: Any, reader: Any, service: JobrunService, c: int,
                   timeout: float) -> list[int]:
    """C warm-up jobs that each hold a slot for WARMUP_SLEEP: every slot starts its child.
    Waiting for them also waits for the service to be up. Returns the children's pids."""
    import proc_tasks

    pids: set[int] = set()
    for _ in range(3):
        jobs = app.enqueue_many([proc_tasks.pid_task.call(WARMUP_SLEEP) for _ in range(c)])
        first, last = jobs[0].id, jobs[-1].id
        _, done = wait_succeeded(reader, first, last, timeout, service.alive)
        if done < c:
            raise RuntimeError(f"warm-up: {done}/{c} succeeded in {timeout:.0f}s; states "
                               f"{states(reader, first, last)}\n{service.errors()}")
        rows = reader.execute("SELECT result FROM jobs WHERE id BETWEEN ? AND ?",
                              (first, last)).fetchall()
        pids |= {json.loads(r[0]) for r in rows}
        if len(pids) >= c:
            break
    return sorted(pids)


def prefetch_line(n: int | None) -> str:
    """The config's prefetch line: none at all when unset, so the queue's default applies."""
    return "" if n is None else f"prefetch = {n}\n"


def prefetch_said(n: int | None) -> str:
    return "at defaults (prefetch unset)" if n is None else f"prefetch = {n}"


def run_jobrun(tmp: str, name: str, n: int, c: int, timeout: float, report: Report,
               profiler: str | None = None) -> Run | None:
    """N no-op jobs through a process queue of C children, from warm to all succeeded."""
    import jobrun
    import proc_tasks

    folder = os.path.join(tmp, name)
    os.makedirs(folder)
    config = os.path.join(folder, "jobrun.toml")
    with open(config, "w") as f:
        f.write(CONFIG.format(c=c, p=prefetch_line(PREFETCH["n"])))
    app = jobrun.App.from_config(config)
    db = app.store.path  # creates and migrates the store before the service opens it
    calls = [proc_tasks.noop_task.call(i) for i in range(n)]  # built outside the timing
    service = JobrunService(config, folder)
    reader = open_apsw(db)
    spy = None
    try:
        children = warm_up_jobrun(app, reader, service, c, timeout)
        if len(children) < c:
            report.problems.append(f"{name}: warm-up reached {len(children)} of {c} children")
        time.sleep(0.2)  # let the warm-up's last round settle
        if profiler:
            spy = start_py_spy(profiler, service.pid, os.path.join(folder, "py-spy.txt"),
                               hz=250, subprocesses=True, settle=1.0)
        cpu_s0, cpu_c0 = cpu_seconds(service.pid), cpu_of(children)
        jobs = app.enqueue_many(calls)  # one transaction; the doorbell rings after commit
        t0 = time.time()
        first, last = jobs[0].id, jobs[-1].id
        seen, done = wait_succeeded(reader, first, last, timeout, service.alive)
        cpu_s1, cpu_c1 = cpu_seconds(service.pid), cpu_of(children)
        if spy is not None:
            stop_py_spy(spy)
        if done < n:
            report.problems.append(f"{name}: only {done}/{n} succeeded within {timeout:.0f}s; "
                                   f"states {states(reader, first, last)}")
            return None
        # The last completion's own time, as the service recorded it: no polling error.
        end, claims, records = reader.execute(
            "SELECT max(finished_at), count(DISTINCT started_at), count(DISTINCT finished_at) "
            "FROM jobs WHERE id BETWEEN ? AND ?", (first, last)).fetchone()
        # Each store round stamps its claims with one started_at and its completions with
        # one finished_at: distinct values count the rounds that claimed / recorded.
        return Run(n, end - t0, delta(cpu_s0, cpu_s1), delta(cpu_c0, cpu_c1),
                   per_round=n / max(1, claims),
                   note=f"{n / max(1, claims):.2f} claims per claiming round, "
                        f"{n / max(1, records):.2f} completions per recording round; children "
                        f"{children}; seen by the poll {seen - end:+.3f} s later")
    finally:
        if spy is not None and spy.poll() is None:
            stop_py_spy(spy)
        reader.close()
        errors = service.stop()
        app.close()
        if errors:
            report.problems.append(f"{name} service log:\n{errors}")


# ---------------------------------------------------------------------------------------
# The bare pool: concurrent.futures.ProcessPoolExecutor, the same function
# ---------------------------------------------------------------------------------------
def pool_context() -> Any:
    import multiprocessing

    return multiprocessing.get_context("forkserver")  # as jobrun's children


def warm_up_pool(ex: ProcessPoolExecutor, workers: int) -> list[int]:
    import proc_tasks

    futures = [ex.submit(proc_tasks.pid_after, WARMUP_SLEEP) for _ in range(workers)]
    return sorted({f.result() for f in futures})


def pool_chunksize(n: int, workers: int) -> int:
    """multiprocessing.Pool.map's default: about 4 chunks per worker."""
    size, extra = divmod(n, workers * 4)
    return size + 1 if extra else max(1, size)


def run_pool(n: int, workers: int, mode: str, chunksize: int = 1) -> Run:
    """N no-op calls through a warm ProcessPoolExecutor(workers): one `submit` per call and a
    wait for all, or `executor.map(..., chunksize=...)` consumed to the end."""
    import proc_tasks

    noop = proc_tasks.noop
    with ProcessPoolExecutor(workers, mp_context=pool_context()) as ex:
        pids = warm_up_pool(ex, workers)
        time.sleep(0.2)
        cpu_p0, cpu_w0 = time.process_time(), cpu_of(pids)
        t0 = time.time()
        if mode == "submit":
            futures = [ex.submit(noop, i) for i in range(n)]
            wait(futures)
            failed = sum(1 for f in futures if f.exception() is not None)
        else:
            results = list(ex.map(noop, range(n), chunksize=chunksize))
            failed = n - len(results)
        t1 = time.time()
        cpu_p1, cpu_w1 = time.process_time(), cpu_of(pids)
    if failed:
        raise RuntimeError(f"bare pool {mode}: {failed} calls failed")
    return Run(n, t1 - t0, cpu_p1 - cpu_p0, delta(cpu_w0, cpu_w1),
               note=f"workers {pids}" + (f", chunksize {chunksize}" if mode == "map" else ""))


# ---------------------------------------------------------------------------------------
# Profile (optional): py-spy on the service and, with --subprocesses, its children
# ---------------------------------------------------------------------------------------
_PROCS = re.compile(r'process (\d+):"(.*?)";(?=process |thread )')


def _role_and_frames(stack: str) -> tuple[str, list[str]]:
    """A --subprocesses stack: its process kind (service / forkserver / child), its frames."""
    procs = _PROCS.findall(stack + ";")
    frames = _PROCS.sub("", stack + ";").rstrip(";").split(";")
    cmd = procs[-1][1] if procs else ""
    role = ("service" if "jobrun.cli" in cmd else
            "forkserver" if len(procs) == 2 else "child")
    return role, frames


def _waits(role: str, src: str) -> bool:
    # A child blocked reading its pipe waits for its next job; the service's slot
    # threads read only after poll() said there is data.
    return bool(WAITING.search(src) or (role == "child" and "read(handle" in src))


def _thread(role: str, first: str) -> str:
    """`role: thread name`, the service's slot threads (procN) together."""
    name = f"{role}: {first.split(': ', 1)[-1]}"
    return re.sub(r"proc\d+$", "procN", name) if role == "service" and "proc" in name else name


# ---------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------
def notes(tmp: str, n: int, repeat: int, chunk: int) -> list[str]:
    """The report's notes: machine_notes', then how this benchmark measures."""
    return machine_notes(tmp) + [
        (f"N = {n:,} no-op calls per timed batch, best of {repeat} run(s) per row, runs "
         "interleaved; the no-op is proc_tasks.noop for both sides"),
        ("jobrun: `python -m jobrun.cli start --config CFG --log-level WARNING`, "
         "[queues.cpu] executor = \"process\", store WAL with synchronous=NORMAL (default); "
         "clock from just after enqueue_many (one transaction, doorbell rung) to the last "
         "job's finished_at; C warm-up jobs (0.3 s each) start the children first"),
        ("bare pool: ProcessPoolExecutor(W, mp_context=forkserver) (jobrun's start method), "
         "W warm-up calls first; clock from the first submit to the last future done; "
         f"map uses multiprocessing.Pool's default chunksize (N/(4W), {chunk:,} for W=2)"),
        ("CPU/job: utime+stime from /proc (dispatcher = the jobrun service process, all its "
         "threads / the pool's owner process; workers = jobrun's children / the pool's "
         "workers)"),
    ]


def run(args: argparse.Namespace) -> int:
    PREFETCH["n"] = args.prefetch
    q = args.quick
    n = args.n or (3_000 if q else 20_000)
    repeat = args.repeat or (1 if q else 3)
    timeout = args.timeout or (60.0 if q else 180.0)
    profiler = profiler_for(args.profile)
    concs = tuple(int(c) for c in args.concurrency.split(",")) if args.concurrency \
        else CONCURRENCIES
    tmp = tempfile.mkdtemp(prefix="jobrun-bench-proc-")
    chunk = args.chunksize or pool_chunksize(n, MAIN_C)
    report = Runs(notes=notes(tmp, n, repeat, chunk))
    log("# jobrun process executor vs bare ProcessPoolExecutor" + (" (--quick)" if q else ""))
    print_notes(report.notes)
    t_all = time.perf_counter()
    try:
        for r in range(repeat):
            log(f"\nround {r + 1}/{repeat}")
            for w in sorted(set(concs) | {MAIN_C}):
                sub = run_pool(n, w, "submit")
                report.keep(f"pool-submit-{w}", sub)
                log(f"  bare pool W={w}, one submit per call: {sub.line()}")
                if w == MAIN_C:
                    mp_ = run_pool(n, w, "map", args.chunksize or pool_chunksize(n, w))
                    report.keep(f"pool-map-{w}", mp_)
                    log(f"  bare pool W={w}, executor.map: {mp_.line()}")
            for c in concs:
                j = run_jobrun(tmp, f"jobrun-c{c}-r{r}", n, c, timeout, report)
                report.keep(f"jobrun-{c}", j)
                log(f"  jobrun C={c}: {j.line() if j else 'failed (see problems)'}")
        if profiler:
            log("\nprofile run (py-spy attached; its rate is lower)")
            folder = f"jobrun-c{MAIN_C}-profile"
            j = run_jobrun(tmp, folder, n, MAIN_C, timeout, report, profiler=profiler)
            report.extra["profile"] = summarize_py_spy(
                os.path.join(tmp, folder, "py-spy.txt"), top=12, split=_role_and_frames,
                waits=_waits, thread=_thread, by_role=True)
            report.extra["profile_run"] = j
    finally:
        finish(tmp, args.keep, report)

    add_rows(report, concs)
    if "profile" in report.extra:
        j = report.extra.get("profile_run")
        print_profile(report.extra["profile"], what="jobrun's process path",
                      how=f"C={MAIN_C}, py-spy at 250 Hz with --subprocesses",
                      that_run=j.line() if j else "-")
    close_report(report, "bare pool", args.json,
                 f"Total time {time.perf_counter() - t_all:.0f} s. Ratio = jobrun / bare pool; "
                 "rows are the best of the runs above. The target row compares against one "
                 "submit per call, since jobrun dispatches one job per pipe message.",
                 runs={k: [dict(vars(x), rate=x.rate) for x in v] for k, v in report.runs.items()},
                 profile=report.extra.get("profile"))
    return 0


def add_rows(report: Runs, concs: tuple[int, ...]) -> None:
    n = next((r.n for runs in report.runs.values() for r in runs), 0)
    sub = report.best(f"pool-submit-{MAIN_C}")
    mp_ = report.best(f"pool-map-{MAIN_C}")
    for c in concs:
        j = report.best(f"jobrun-{c}")
        jr = j.rate if j else None
        ref = report.best(f"pool-submit-{c}")
        if c == MAIN_C:
            ok = jr is not None and sub is not None and jr >= TARGET * sub.rate
            report.add(Row(f"no-op jobs/s, C={c} vs ProcessPoolExecutor({c}), one submit per "
                           f"call (N={n:,}), {prefetch_said(PREFETCH['n'])}", jr, sub.rate if sub else None, "jobs/s",
                           f">= {TARGET:.0%} of pool", ok))
            report.add(Row(f"  (ref) C={c} vs ProcessPoolExecutor({c}).map, chunksize "
                           f"{pool_chunksize(n, c):,}", jr, mp_.rate if mp_ else None,
                           "jobs/s"))
        else:
            report.add(Row(f"no-op jobs/s, C={c} vs ProcessPoolExecutor({c}), one submit per "
                           "call", jr, ref.rate if ref else None, "jobs/s"))
            report.add(Row(f"  (ref) C={c} vs ProcessPoolExecutor({MAIN_C}), one submit per "
                           "call", jr, sub.rate if sub else None, "jobs/s"))
    for c in concs:
        j = report.best(f"jobrun-{c}")
        report.add(Row(f"  jobrun C={c}: jobs claimed per store round (best run)",
                       j.per_round if j else None, None, "x"))
    for c in concs:
        j = report.best(f"jobrun-{c}")
        ref = report.best(f"pool-submit-{c}")
        report.add(Row(f"  CPU per job, dispatcher: jobrun service (C={c}) / pool owner "
                       f"(W={c})", j.cpu_us("parent") if j else None,
                       ref.cpu_us("parent") if ref else None, "us"))
        report.add(Row(f"  CPU per job, workers: jobrun children (C={c}) / pool workers "
                       f"(W={c})", j.cpu_us("workers") if j else None,
                       ref.cpu_us("workers") if ref else None, "us"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="N=3,000, one run per row (~10 s)")
    p.add_argument("--prefetch", type=int, default=None, metavar="P",
                   help="[queues.cpu] prefetch: jobs claimed ahead of free children "
                        "(default: unset, the queue's default)")
    p.add_argument("--n", type=int, metavar="N", help="no-op calls per timed batch")
    p.add_argument("--repeat", type=int, metavar="R", help="runs per row, best kept")
    p.add_argument("--concurrency", metavar="LIST", help="jobrun concurrencies (default 2,4)")
    p.add_argument("--chunksize", type=int, metavar="K", help="executor.map chunksize")
    p.add_argument("--timeout", type=float, metavar="S", help="give up on a batch after S s")
    p.add_argument("--profile", action="store_true",
                   help="py-spy the service and its children during one extra C=2 run")
    output_options(p, keep="keep the temp dir (logs, py-spy)")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
