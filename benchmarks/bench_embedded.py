#!/usr/bin/env python
"""Embedded-service benchmark: how long a web request thread's `enqueue` takes while
`App.start()` in the same process works through a load.

    .venv/bin/python benchmarks/bench_embedded.py            # 3 rounds (~70 s)
    .venv/bin/python benchmarks/bench_embedded.py --quick    # 1 round

Issue 14's load, "200 jobs of 2 ms every 10 ms", read two ways, both measured in one run:
  steady  the headline, against the targets: one 2 ms job (`time.sleep`) enqueued every
          10 ms by a producer process, one transaction each (200 jobs over 2 s, and on for
          as long as the round lasts): a load the service keeps up with
  flood   200 such jobs in one `enqueue_many` every 10 ms (20,000 jobs/s): far more than
          the service's 8 threads finish, so the backlog grows all round (info, no target)
Meanwhile this process's request thread enqueues one job every 10 ms, each call timed
(perf_counter around `task.enqueue`). The set-ups, each on a fresh store, rounds
interleaved; every one but quiet once per load:
  quiet     no load, no service: the enqueue alone (the issue's "idle")
  load      the producer, no service: what the producer's own transactions cost
  embedded  the producer, and `app.start()` in this process (the service's threads)
  separate  the producer, and `jobrun start` in a subprocess on the same store: the store's
            locks without this process's GIL
A ticker thread sleeping 1 ms in a loop records how late it wakes: the GIL held by other
threads of this process, apart from the store.

Printed: p50/p99/max of the request thread's enqueue per set-up (steady embedded against
the targets: p99 <= 2 ms, max <= 10 ms), the ticker's lateness, the jobs/s the service
finished and the jobs still queued at the round's end (steady: the service kept up).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import jobrun  # noqa: E402
from _common import (  # noqa: E402 (after the sys.path line above)
    Report,
    Row,
    Subprocess,
    child_env,
    finish,
    log,
    machine_notes,
    markdown,
    open_apsw,
    pct,
    poll_count,
    print_notes,
    print_problems,
)

P99_TARGET, MAX_TARGET = 2.0, 10.0  # ms, for the steady load's embedded set-up
BURST, EVERY, WORK = 200, 0.010, 0.002  # the flood: BURST jobs of WORK s every EVERY s
LOADS = ("steady", "flood")  # the steady load: one job every EVERY s
SAMPLES = 300           # timed request enqueues per round, one every EVERY s
TICK = 0.001
SETUPS = ("quiet", "load", "embedded", "separate")
SERVED = ("embedded", "separate")
CONFIG = """\
# written by benchmarks/bench_embedded.py
[jobrun]
store = "jobs.db"
import = ["bench_embedded"]
"""
DONE_SQL = "SELECT count(*) FROM jobs WHERE state = 'succeeded'"
QUEUED_SQL = "SELECT count(*) FROM jobs WHERE state = 'queued'"
TASK = "bench_embedded:work"
COUNT = "jobs/s"  # the unit whose cells fmt prints as a plain number: a count of jobs here

app = jobrun.App()  # registration only: each set-up opens its own App on its store


def work(i: int = 0) -> None:
    """A job of the load: 2 ms away from the CPU, as a call to another service."""
    time.sleep(WORK)


app.task(name=TASK)(work)  # what the separate service and the producer import


@dataclass
class Sample:
    enqueue_ms: list[float] = field(default_factory=list)
    late_ms: list[float] = field(default_factory=list)
    done_per_s: list[float] = field(default_factory=list)
    backlog: list[float] = field(default_factory=list)  # jobs queued at the round's end


class Ticker:
    """A thread sleeping TICK in a loop; how late each wake-up is, in ms."""

    def __init__(self) -> None:
        self.late: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ticker", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter()
            time.sleep(TICK)
            self.late.append((time.perf_counter() - t - TICK) * 1e3)

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def on_schedule(fn: Any, stop: Any) -> list[float]:
    """fn(i) every EVERY s on a fixed schedule until stop(i) (open loop: calls that fall
    behind follow at once, as requests would keep arriving); each call's duration in ms."""
    took: list[float] = []
    start, i = time.perf_counter(), 0
    while not stop(i):
        delay = start + i * EVERY - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t = time.perf_counter()
        fn(i)
        took.append((time.perf_counter() - t) * 1e3)
        i += 1
    return took


def produce(config: str, burst: int, stop_file: str) -> None:
    """The load (hidden sub-command `_load`) until stop_file: `burst` jobs in one
    `enqueue_many` every EVERY s, or with burst 1 (steady) one `enqueue` each."""
    logging.getLogger("jobrun").setLevel(logging.ERROR)  # no service yet in `load`: says so
    a = jobrun.App.from_config(config)
    task = a.task(name=TASK)(work)
    calls = [task.call(0) for _ in range(burst)]
    open(stop_file + ".started", "w").close()
    on_schedule(task.enqueue if burst == 1 else lambda i: a.enqueue_many(calls),
                lambda i: os.path.exists(stop_file))
    a.close()


def one(tmp: str, name: str, setup: str, burst: int, n: int, report: Report
        ) -> Sample | None:
    folder = os.path.join(tmp, name)
    os.makedirs(folder)
    config = os.path.join(folder, "jobrun.toml")
    with open(config, "w") as f:
        f.write(CONFIG)
    a = jobrun.App.from_config(config)
    db = a.store.path
    task = a.task(name=TASK)(work)  # this set-up's store
    task.enqueue(-1)  # catalog, connections and pages warm before the clock
    env = child_env(here=True)
    stop_file = os.path.join(folder, "stop")
    procs: list[Subprocess] = []
    reader = open_apsw(db)
    try:
        if setup == "embedded":
            a.start()
        elif setup == "separate":
            procs.append(Subprocess([sys.executable, "-m", "jobrun.cli", "start", "--config",
                                     config, "--log-level", "WARNING"],
                                    os.path.join(folder, "service.log"), stop_wait=30,
                                    cwd=folder, env=env))
        if setup in SERVED:
            _, seen = poll_count(reader, DONE_SQL, (), 1, 30.0)
            if seen < 1:
                report.problems.append(f"{name}: the warm-up job did not run")
                return None
        if setup != "quiet":
            procs.append(Subprocess([sys.executable, os.path.abspath(__file__), "_load",
                                     config, str(burst), stop_file],
                                    os.path.join(folder, "load.log"), stop_wait=10,
                                    cwd=folder, env=env))
            poll_file(stop_file + ".started", 30.0)
        sample = Sample()
        done0, t0 = reader.execute(DONE_SQL).fetchone()[0], time.perf_counter()
        with Ticker() as ticker:
            sample.enqueue_ms = on_schedule(task.enqueue, lambda i: i >= n)
        done1, t1 = reader.execute(DONE_SQL).fetchone()[0], time.perf_counter()
        sample.late_ms = ticker.late
        sample.done_per_s = [(done1 - done0) / (t1 - t0)]
        sample.backlog = [reader.execute(QUEUED_SQL).fetchone()[0]]
        return sample
    finally:
        open(stop_file, "w").close()
        reader.close()
        a.stop()
        for proc in reversed(procs):
            errors = proc.stop()
            if errors:
                report.problems.append(f"{name} {os.path.basename(proc.log_path)}:\n{errors}")
        a.close()


def poll_file(path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear within {timeout:g} s")
        time.sleep(0.01)


def summary(xs: list[float]) -> str:
    return f"p50 {pct(xs, 50):.2f} / p99 {pct(xs, 99):.2f} / max {max(xs):.2f} ms"


def run(args: argparse.Namespace) -> int:
    logging.getLogger("jobrun").setLevel(logging.ERROR)  # a drain's hand-backs, per job
    rounds = args.rounds or (1 if args.quick else 3)
    n, loads = args.samples, [x for x in args.loads.split(",") if x]
    if not loads or set(loads) - set(LOADS):
        raise SystemExit(f"--loads: a comma-separated list of {', '.join(LOADS)}")
    bursts = {"steady": 1, "flood": args.burst}
    runs = [("quiet", "")] + [(s, load) for load in loads for s in SETUPS[1:]]
    tmp = tempfile.mkdtemp(prefix="jobrun-bench-embedded-")
    report = Report(notes=machine_notes(None, remark="other work adds noise") + [
        f"steady load: one job of {WORK * 1e3:.0f} ms (sleep) every {EVERY * 1e3:.0f} ms, one "
        "`enqueue` (transaction) each, from a producer process (100 jobs/s)",
        f"flood load: {args.burst} such jobs every {EVERY * 1e3:.0f} ms, one `enqueue_many` "
        f"each, from a producer process ({args.burst / EVERY:,.0f} jobs/s)",
        f"{n} timed request enqueues per round, one every {EVERY * 1e3:.0f} ms; {rounds} "
        "round(s), set-ups interleaved; store defaults (thread queue, concurrency 8, "
        "durability normal)",
    ])
    log("# request-thread enqueue beside an embedded jobrun service" +
        (" (--quick)" if args.quick else ""))
    print_notes(report.notes)
    got: dict[tuple[str, str], Sample] = {k: Sample() for k in runs}
    try:
        for r in range(rounds):
            for setup, load in runs:
                s = one(tmp, f"{load or 'no'}-{setup}-r{r}", setup,
                        bursts.get(load, 0), n, report)
                if s is None:
                    continue
                for k, v in vars(s).items():
                    getattr(got[setup, load], k).extend(v)
                what = f"{setup}, {load} load" if load else setup
                served = (f"; {s.done_per_s[0]:,.0f} jobs/s finished, {s.backlog[0]:,.0f} "
                          "queued at the end") if setup in SERVED else ""
                log(f"  round {r + 1}, {what}: enqueue {summary(s.enqueue_ms)}; ticker late "
                    f"{summary(s.late_ms)}{served}")
    finally:
        finish(tmp, args.keep, report)
    log(f"- {report.notes[-1]}")
    if not all(got[k].enqueue_ms for k in runs):
        print_problems(report.problems)
        return 1
    for load in loads:
        add_rows(report, got, load)
    print_problems(report.problems)
    log("\nRatio = the set-up / quiet (no load, no service). 'load only' is the producer "
        "without a service, 'own process' the service outside this process: what those "
        "show is the store's lock, not this process's GIL. Targets for the steady load; the "
        "flood's rows are information.\n")
    log(markdown(report.rows, "quiet"))
    return 0


def add_rows(report: Report, got: dict[tuple[str, str], Sample], load: str) -> None:
    quiet = got["quiet", ""]
    for label, fn in (("p50", lambda xs: pct(xs, 50)), ("p99", lambda xs: pct(xs, 99)),
                      ("max", max)):
        target = {"p99": P99_TARGET, "max": MAX_TARGET}.get(label) \
            if load == "steady" else None
        v = fn(got["embedded", load].enqueue_ms)
        report.add(Row(f"{load}: request-thread enqueue {label}, `app.start()` under load "
                       "/ quiet", v, fn(quiet.enqueue_ms), "ms",
                       f"<= {target:g} ms" if target else "info",
                       v <= target if target else None))
        for setup, what in (("load", "the load only, no service"),
                            ("separate", "the service in its own process")):
            report.add(Row(f"  {load}: the same, {what}", fn(got[setup, load].enqueue_ms),
                           fn(quiet.enqueue_ms), "ms"))
        report.add(Row(f"  {load}: ticker thread late {label}, `app.start()` under load "
                       "/ quiet", fn(got["embedded", load].late_ms), fn(quiet.late_ms), "ms"))
    for setup in SERVED:
        s = got[setup, load]
        report.add(Row(f"  {load}: jobs/s the service finished meanwhile ({setup})",
                       sum(s.done_per_s) / len(s.done_per_s), None, "jobs/s"))
        report.add(Row(f"  {load}: jobs queued at the round's end, most ({setup})",
                       max(s.backlog), None, COUNT))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_load"]:
        produce(argv[1], int(argv[2]), argv[3])
        return 0
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one round")
    p.add_argument("--rounds", type=int, metavar="R", help="rounds per set-up (3)")
    p.add_argument("--loads", default=",".join(LOADS), metavar="L,...",
                   help=f"which loads ({','.join(LOADS)})")
    p.add_argument("--burst", type=int, default=BURST, metavar="B",
                   help=f"the flood's jobs per enqueue_many, every 10 ms ({BURST})")
    p.add_argument("--samples", type=int, default=SAMPLES, metavar="N",
                   help=f"timed request enqueues per round ({SAMPLES})")
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
