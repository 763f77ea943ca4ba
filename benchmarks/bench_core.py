#!/usr/bin/env python
"""Core benchmarks: jobrun against Huey's SqliteHuey, in the same run, on the same machine.

    .venv/bin/python benchmarks/bench_core.py            # full run (~4 min)
    .venv/bin/python benchmarks/bench_core.py --quick    # smaller N (~1 min)

Metrics (each side in a fresh temp dir; see benchmarks/README.md):
  1. single enqueue calls, one transaction each, no worker running
  2. enqueue_many (one transaction) vs Huey's single-enqueue rate as the reference
  3. no-op jobs end to end (thread executor, completions recorded), C in {8, 16, 32}
  4. enqueue-to-start latency from another process to an idle service, and idle CPU

Services and consumers (_sides.py's) run in subprocesses of this script (hidden
sub-commands `_jobrun-service` and `_huey-consumer`), with logging at WARNING.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass

from _common import (
    Report,
    close_report,
    finish,
    fmt,
    idle_cpu_percent,
    log,
    machine_notes,
    output_options,
    pct,
    print_notes,
    rate,
)
from _profile import print_profile, profiler_for, start_py_spy, stop_py_spy, summarize_py_spy
from _sides import (
    HUEY_DEFAULT_POLL,
    HUEY_DONE,
    HUEY_FAST_POLL,
    HUEY_NAME,
    JOBRUN_DONE,
    Child,
    Row,
    fresh_copy,
    huey_template,
    jobrun_settings,
    jobrun_states,
    jobrun_tasks,
    jobrun_template,
    make_huey,
    serve,
    wait_count,
)

CONCURRENCIES = (8, 16, 32)
METRICS = ("single", "many", "e2e", "latency")


# ---------------------------------------------------------------------------------------
# 1. single enqueue
# ---------------------------------------------------------------------------------------
def bench_single_enqueue(tmp: str, n: int, report: Report) -> float:
    import jobrun

    app = jobrun.App(os.path.join(tmp, "single-jobrun", "jobs.db"), settings=jobrun_settings(8))
    noop, _ = jobrun_tasks(app)
    noop.enqueue(-1)  # open and migrate the store outside the timing

    def jobrun_loop() -> None:
        for i in range(n):
            noop.enqueue(i)
    j = rate(n, jobrun_loop)
    app.close()

    os.makedirs(os.path.join(tmp, "single-huey"))
    huey, hnoop, _ = make_huey(os.path.join(tmp, "single-huey", "huey.db"))
    hnoop(-1)

    def huey_loop() -> None:
        for i in range(n):
            hnoop(i)
    h = rate(n, huey_loop)
    huey.storage.close()

    # Reference only: Huey with synchronous=OFF (its fsync=False); jobrun runs NORMAL.
    os.makedirs(os.path.join(tmp, "single-huey-off"))
    huey2, hnoop2, _ = make_huey(os.path.join(tmp, "single-huey-off", "huey.db"), fsync=False)
    hnoop2(-1)

    def huey_off_loop() -> None:
        for i in range(n):
            hnoop2(i)
    h_off = rate(n, huey_off_loop)
    huey2.storage.close()

    report.add(Row(f"single enqueue, 1 txn each (N={n:,})", j, h, "jobs/s", ">= 4x huey",
                   j / h >= 4))
    report.add(Row("  (ref) vs huey with synchronous=OFF (fsync=False)", j, h_off, "jobs/s"))
    log(f"  single enqueue: jobrun {j:,.0f}/s  huey {h:,.0f}/s (huey sync=OFF {h_off:,.0f}/s)")
    return h


# ---------------------------------------------------------------------------------------
# 2. enqueue_many
# ---------------------------------------------------------------------------------------
def bench_enqueue_many(tmp: str, n: int, huey_single: float | None, report: Report) -> None:
    import jobrun

    app = jobrun.App(os.path.join(tmp, "many-jobrun", "jobs.db"), settings=jobrun_settings(8))
    noop, _ = jobrun_tasks(app)
    noop.enqueue(-1)
    j = rate(n, lambda: app.enqueue_many([noop.call(i) for i in range(n)]))
    app.close()
    report.add(Row(f"enqueue_many, 1 txn (N={n:,}); huey: single-enqueue ref", j, huey_single,
                   "jobs/s", ">= 100,000 jobs/s", j >= 100_000))
    log(f"  enqueue_many: jobrun {j:,.0f}/s")


# ---------------------------------------------------------------------------------------
# 3. no-op end to end
# ---------------------------------------------------------------------------------------
def e2e_jobrun_subprocess(template: str, folder: str, n: int, c: int, timeout: float,
                          report: Report, profiler: str | None = None) -> float | None:
    db = fresh_copy(template, folder)
    child = Child(["_jobrun-service", db, str(c)], os.path.join(folder, "service.log"))
    spy = None
    if profiler:
        spy = start_py_spy(profiler, child.pid, os.path.join(folder, "py-spy.txt"), hz=500,
                           subprocesses=False, settle=0.5)
    start = child.go()
    end, done = wait_count(db, "jobrun", JOBRUN_DONE, (), n, timeout)
    if spy is not None:
        stop_py_spy(spy)
    errors = child.stop()
    if errors:
        report.problems.append(f"jobrun service C={c} stderr:\n{errors}")
    if done < n:
        report.problems.append(f"jobrun e2e C={c}: only {done}/{n} succeeded after {timeout}s; "
                               f"states {jobrun_states(db)}")
        return None
    return n / (end - start)


def e2e_jobrun_inprocess(template: str, folder: str, n: int, c: int, timeout: float,
                         report: Report) -> float | None:
    import jobrun

    db = fresh_copy(template, folder)
    app = jobrun.App(db, settings=jobrun_settings(c))
    jobrun_tasks(app)
    start = time.time()
    app.start()
    end, done = wait_count(db, "jobrun", JOBRUN_DONE, (), n, timeout)
    app.stop(10.0)
    app.close()
    if done < n:
        report.problems.append(f"jobrun in-process e2e C={c}: only {done}/{n} succeeded; "
                               f"states {jobrun_states(db)}")
        return None
    return n / (end - start)


def e2e_huey(template: str, folder: str, n: int, c: int, timeout: float,
             report: Report) -> float | None:
    db = fresh_copy(template, folder)
    child = Child(["_huey-consumer", db, str(c), json.dumps(HUEY_FAST_POLL)],
                  os.path.join(folder, "consumer.log"))
    start = child.go()
    end, done = wait_count(db, "huey", HUEY_DONE, (HUEY_NAME,), n, timeout)
    errors = child.stop()
    if errors:
        report.problems.append(f"huey consumer C={c} stderr:\n{errors}")
    if done < n:
        report.problems.append(f"huey e2e C={c}: only {done}/{n} results after {timeout}s")
        return None
    return n / (end - start)


def bench_e2e(tmp: str, n: int, timeout: float, in_process: bool, report: Report,
              profiler: str | None) -> None:
    jt = jobrun_template(tmp, n, settings=jobrun_settings(8))
    ht = huey_template(tmp, n)
    best_j: tuple[float, int] | None = None
    best_h: tuple[float, int] | None = None
    for c in CONCURRENCIES:
        j = e2e_jobrun_subprocess(jt, os.path.join(tmp, f"e2e-jobrun-{c}"), n, c, timeout,
                                  report)
        h = e2e_huey(ht, os.path.join(tmp, f"e2e-huey-{c}"), n, c, timeout, report)
        report.add(Row(f"no-op e2e, service subprocess, C={c} (N={n:,})", j, h, "jobs/s"))
        log(f"  e2e C={c}: jobrun {fmt(j, 'jobs/s')}/s  huey {fmt(h, 'jobs/s')}/s")
        if j is not None and (best_j is None or j > best_j[0]):
            best_j = (j, c)
        if h is not None and (best_h is None or h > best_h[0]):
            best_h = (h, c)
        if in_process:
            ji = e2e_jobrun_inprocess(jt, os.path.join(tmp, f"e2e-inproc-{c}"), n, c, timeout,
                                      report)
            report.add(Row(f"  (ref) jobrun in-process App.start(), C={c}", ji, h, "jobs/s"))
            log(f"  e2e C={c}: jobrun in-process {fmt(ji, 'jobs/s')}/s")
    if best_j and best_h:
        r = best_j[0] / best_h[0]
        report.add(Row(f"no-op e2e, best C (jobrun C={best_j[1]}, huey C={best_h[1]})",
                       best_j[0], best_h[0], "jobs/s", ">= 10x huey", r >= 10))
    else:
        report.add(Row("no-op e2e, best C", best_j[0] if best_j else None,
                       best_h[0] if best_h else None, "jobs/s", ">= 10x huey", False))
    if profiler:
        folder = os.path.join(tmp, "e2e-jobrun-profile")
        j = e2e_jobrun_subprocess(jt, folder, n, 8, timeout, report, profiler=profiler)
        report.extra["profile"] = summarize_py_spy(os.path.join(folder, "py-spy.txt"))
        report.extra["profile_rate"] = j


# ---------------------------------------------------------------------------------------
# 4. latency to an idle service, and idle CPU
# ---------------------------------------------------------------------------------------
@dataclass
class Latency:
    p50: float
    p99: float
    mean: float
    max: float
    idle_cpu: float
    enqueue_p50: float  # the enqueue call itself (commit included), in the producer
    enqueue_p99: float
    late_p50: float = 0.0  # delayed jobs: start minus run_at, on an idle service
    late_p99: float = 0.0

    @classmethod
    def of(cls, lats: list[float], enqueues: list[float], idle_cpu: float) -> Latency:
        return cls(pct(lats, 50), pct(lats, 99), sum(lats) / len(lats), max(lats), idle_cpu,
                   pct(enqueues, 50), pct(enqueues, 99))

    def line(self) -> str:
        return (f"p50 {self.p50:.2f} ms  p99 {self.p99:.2f} ms  max {self.max:.2f} ms  "
                f"(enqueue call p50 {self.enqueue_p50:.2f} ms, p99 {self.enqueue_p99:.2f} ms)  "
                f"idle CPU {self.idle_cpu:.2f} %")


def latency_jobrun(folder: str, samples: int, gap: float, idle_s: float,
                   report: Report) -> Latency:
    import jobrun

    db = os.path.join(folder, "jobs.db")
    producer = jobrun.App(db, settings=jobrun_settings(8))
    _, stamp = jobrun_tasks(producer)
    _ = producer.store  # create the store before the service opens it
    child = Child(["_jobrun-service", db, "8"], os.path.join(folder, "service.log"))
    child.go()
    lats, enqueues = [], []
    for i in range(samples + 5):  # 5 warm-up jobs
        time.sleep(gap)
        t0 = time.time()
        job = stamp.enqueue()
        t1 = time.time()
        started = job.result(timeout=10)
        if i >= 5:
            lats.append((started - t0) * 1000)
            enqueues.append((t1 - t0) * 1000)
    # Delayed jobs on the idle service: how late after their run_at do they start?
    late = []
    for _ in range(max(10, samples // 5)):
        job = stamp.options(delay=0.1).enqueue()
        started = job.result(timeout=10)
        late.append((started - producer.job(job.id).record.run_at) * 1000)
    time.sleep(0.5)
    cpu = idle_cpu_percent(child.pid, idle_s)
    errors = child.stop()
    producer.close()
    if errors:
        report.problems.append(f"jobrun latency service stderr:\n{errors}")
    out = Latency.of(lats, enqueues, cpu)
    out.late_p50, out.late_p99 = pct(late, 50), pct(late, 99)
    return out


def latency_huey(folder: str, samples: int, gap: float, idle_s: float, poll: dict[str, float],
                 report: Report) -> Latency:
    db = os.path.join(folder, "huey.db")
    huey, _, stamp = make_huey(db)
    child = Child(["_huey-consumer", db, "8", json.dumps(poll)],
                  os.path.join(folder, "consumer.log"))
    child.go()
    lats, enqueues = [], []
    for i in range(samples + 5):
        time.sleep(gap)
        t0 = time.time()
        result = stamp()
        t1 = time.time()
        started = result.get(blocking=True, timeout=30, max_delay=0.002)
        if i >= 5:
            lats.append((started - t0) * 1000)
            enqueues.append((t1 - t0) * 1000)
    time.sleep(0.5)
    cpu = idle_cpu_percent(child.pid, idle_s)
    errors = child.stop()
    huey.storage.close()
    if errors:
        report.problems.append(f"huey latency consumer stderr:\n{errors}")
    return Latency.of(lats, enqueues, cpu)


def bench_latency(tmp: str, samples: int, huey_default_samples: int, idle_s: float,
                  report: Report) -> None:
    gap = 0.02
    for name in ("lat-jobrun", "lat-huey-fast", "lat-huey-default"):
        os.makedirs(os.path.join(tmp, name))
    j = latency_jobrun(os.path.join(tmp, "lat-jobrun"), samples, gap, idle_s, report)
    log(f"  latency jobrun: {j.line()}")
    hf = latency_huey(os.path.join(tmp, "lat-huey-fast"), samples, gap, idle_s,
                      HUEY_FAST_POLL, report)
    log(f"  latency huey (fast poll): {hf.line()}")
    hd = latency_huey(os.path.join(tmp, "lat-huey-default"), huey_default_samples, gap, idle_s,
                      HUEY_DEFAULT_POLL, report)
    log(f"  latency huey (default poll): {hd.line()}")
    report.add(Row(f"enqueue->start latency p50, other process, idle ({samples} samples)",
                   j.p50, hf.p50, "ms", "<= 2 ms", j.p50 <= 2, higher_is_better=False))
    report.add(Row("enqueue->start latency p99", j.p99, hf.p99, "ms", "<= 10 ms", j.p99 <= 10,
                   higher_is_better=False))
    report.add(Row("delayed job (delay=0.1 s): start after run_at, p99", j.late_p99, None,
                   "ms", "<= 50 ms", j.late_p99 <= 50, higher_is_better=False))
    report.add(Row(f"idle service CPU over {idle_s:g} s (% of one core)", j.idle_cpu,
                   hf.idle_cpu, "%", "< 1 %", j.idle_cpu < 1, higher_is_better=False))
    report.add(Row(f"  (ref) latency p50 vs huey default poll ({huey_default_samples} samples)",
                   j.p50, hd.p50, "ms", higher_is_better=False))
    report.add(Row("  (ref) latency p99 vs huey default poll", j.p99, hd.p99, "ms",
                   higher_is_better=False))
    report.add(Row("  (ref) idle CPU vs huey default poll", j.idle_cpu, hd.idle_cpu, "%",
                   higher_is_better=False))
    report.add(Row("  (ref) the enqueue call alone, p99 (in the latency run)", j.enqueue_p99,
                   hf.enqueue_p99, "ms", higher_is_better=False))
    report.extra["latency"] = {"jobrun": vars(j), "huey_fast": vars(hf), "huey_default": vars(hd)}


# ---------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------
# How it measures: the notes after machine_notes'.
HOW = [
    "jobrun store: WAL, synchronous=NORMAL (its default); SqliteHuey: WAL, "
    "synchronous=FULL (its default, fsync=None)",
    "services/consumers run in subprocesses with logging at WARNING (per-job INFO lines "
    "would otherwise dominate the no-op runs)",
    f"huey consumer: thread workers, periodic=False, check_worker_health=False, fast poll "
    f"{HUEY_FAST_POLL} (default poll {HUEY_DEFAULT_POLL} only where said)",
    "huey completions are counted as rows in its result store (the no-op returns 1), "
    "jobrun's as state='succeeded' rows; both polled every 20 ms from another connection",
    "latency: t0 = time.time() just before the enqueue call in this (producer) process, "
    "t1 = time.time() at the start of the job in the service; 20 ms idle between samples",
]


def run(args: argparse.Namespace) -> int:
    q = args.quick
    n_single = args.n_single or (1_000 if q else 5_000)
    n_many = args.n_many or (20_000 if q else 100_000)
    n_e2e = args.n_e2e or (3_000 if q else 20_000)
    samples = args.samples or (100 if q else 300)
    huey_default_samples = max(20, samples // 3)
    idle_s = args.idle or (3.0 if q else 10.0)
    profiler = profiler_for(args.profile)

    tmp = tempfile.mkdtemp(prefix="jobrun-bench-")
    report = Report(notes=machine_notes(tmp, huey=sqlite3.sqlite_version) + HOW)
    log("# jobrun vs huey (SqliteHuey): core benchmarks" + (" (--quick)" if q else ""))
    print_notes(report.notes)
    t_all = time.perf_counter()
    only = set(args.only.split(",")) if args.only else set(METRICS)
    huey_single = None
    try:
        if "single" in only:
            log("\n1. single enqueue")
            huey_single = bench_single_enqueue(tmp, n_single, report)
        if "many" in only:
            log("2. enqueue_many")
            bench_enqueue_many(tmp, n_many, huey_single, report)
        if "e2e" in only:
            log("3. no-op jobs end to end")
            bench_e2e(tmp, n_e2e, 30.0 if q else 60.0, not args.no_inprocess, report, profiler)
        if "latency" in only:
            log("4. latency and idle CPU")
            bench_latency(tmp, samples, huey_default_samples, idle_s, report)
    finally:
        finish(tmp, args.keep, report)
    if "profile" in report.extra:
        print_profile(report.extra["profile"], what="the jobrun service",
                      how="no-op e2e, C=8, py-spy at 500 Hz",
                      that_run=f"{fmt(report.extra.get('profile_rate'), 'jobs/s')} jobs/s")
    close_report(report, "huey", args.json,
                 f"Total time {time.perf_counter() - t_all:.0f} s. Ratio = jobrun / huey "
                 "(for ms and % rows, lower is better).", extra=report.extra)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if (status := serve(argv)) is not None:
        return status
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller N (about a minute)")
    p.add_argument("--n-single", type=int, metavar="N", help="single enqueues per side")
    p.add_argument("--n-many", type=int, metavar="N", help="jobs in the enqueue_many call")
    p.add_argument("--n-e2e", type=int, metavar="N", help="no-op jobs per end-to-end run")
    p.add_argument("--samples", type=int, metavar="N", help="latency samples")
    p.add_argument("--idle", type=float, metavar="S", help="seconds of idleness for the CPU measure")
    p.add_argument("--no-inprocess", action="store_true",
                   help="skip the in-process App.start() end-to-end runs")
    p.add_argument("--profile", action="store_true",
                   help="py-spy the jobrun service during one extra no-op run (C=8)")
    p.add_argument("--only", metavar="LIST", help=f"comma-separated subset of {','.join(METRICS)}")
    output_options(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
