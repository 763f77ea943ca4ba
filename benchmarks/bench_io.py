#!/usr/bin/env python
"""Bytes, CPU and throughput per job: jobrun against Huey's SqliteHuey, in the same run.

    .venv/bin/python benchmarks/bench_io.py            # full run (~3 min)
    .venv/bin/python benchmarks/bench_io.py --quick    # shorter (~1 min)

Rows (each side in a fresh temp dir on the disk, both at their default settings):
  1. bytes handed to the storage layer per job (/proc/PID/io write_bytes, producer + service),
     a producer subprocess doing one enqueue each at 20 jobs/s for 30 s; the service's CPU per
     job in that run; what the idle service writes afterwards (it must write nothing)
  2. no-op backlog at default settings (concurrency 8): jobs/s and the service's CPU per job
     (utime+stime / jobs), beside Huey at its best (2 thread workers, no result stored)

The services and consumers are bench_core.py's subprocesses (_sides.py); the producers are this
script's (hidden sub-commands `_jobrun-producer` and `_huey-producer`).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from typing import Any

from _common import (
    Report,
    close_report,
    cpu_seconds,
    delta,
    finish,
    log,
    machine_notes,
    output_options,
    poll_count,
    print_notes,
)
from _sides import (
    HUEY_DEFAULT_POLL,
    HUEY_FAST_POLL,
    HUEY_NAME,
    JOBRUN_DONE,
    Child,
    Row,
    connect,
    fresh_copy,
    huey_template,
    jobrun_tasks,
    jobrun_template,
    make_huey,
)

METRICS = ("bytes", "throughput")
HUEY_BEST_WORKERS = 2  # Huey's best no-op rate on this machine: 2 thread workers


def write_bytes(pid: int | str) -> int | None:
    """write_bytes of /proc/PID/io: bytes this process caused to be sent to the storage
    layer (pages it dirtied); None once it is gone."""
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ---------------------------------------------------------------------------------------
# Producer subprocesses: open the store, say "ready", wait for "go", enqueue one job per
# 1/rate s for `seconds`, then print {"jobs": n, "write_bytes": bytes of the enqueues}.
# ---------------------------------------------------------------------------------------
def paced(rate_: float, seconds: float, enqueue: Any) -> int:
    n = int(rate_ * seconds)
    t0 = time.monotonic()
    for i in range(n):
        wait = t0 + i / rate_ - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        enqueue(i)
    return n


def produce_jobrun(db: str, rate_: float, seconds: float) -> int:
    import jobrun

    app = jobrun.App(db)
    noop, _ = jobrun_tasks(app)
    app.store.read("SELECT 1")  # connection open and schema checked before the count
    return produce(lambda: paced(rate_, seconds, noop.enqueue), app.close)


def produce_huey(db: str, rate_: float, seconds: float) -> int:
    huey, noop, _ = make_huey(db)
    huey.storage.queue_size()
    return produce(lambda: paced(rate_, seconds, noop), huey.storage.close)


def produce(run: Any, close: Any) -> int:
    print("ready", flush=True)
    sys.stdin.readline()
    before = write_bytes("self")
    n = run()
    after = write_bytes("self")
    close()
    print(json.dumps({"jobs": n, "write_bytes": (after or 0) - (before or 0)}), flush=True)
    return 0


class Producer:
    def __init__(self, side: str, db: str, rate_: float, seconds: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), f"_{side}-producer", db, str(rate_),
             str(seconds)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdin is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{side} producer did not start")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self) -> dict[str, int]:
        assert self.proc.stdout is not None
        out: dict[str, int] = json.loads(self.proc.stdout.readline())
        self.proc.wait(30)
        return out


# ---------------------------------------------------------------------------------------
# 1. bytes per job at 20 jobs/s, one enqueue each
# ---------------------------------------------------------------------------------------
HUEY_LEFT = "SELECT count(*) FROM task WHERE queue = ?"
HUEY_RESULTS = "SELECT count(*) FROM kv WHERE queue = ?"


def bytes_run(side: str, folder: str, rate_: float, seconds: float, idle_s: float,
              report: Report) -> dict[str, float] | None:
    """One side's paced run: bytes per job (producer, service), service CPU per job, and
    the idle service's bytes afterwards."""
    os.makedirs(folder)
    params: tuple[Any, ...]
    if side == "jobrun":
        db = os.path.join(folder, "jobs.db")
        import jobrun

        app = jobrun.App(db)  # create the store (its first pages are not a job's)
        jobrun_tasks(app)
        _ = app.store
        app.close()
        service = Child(["_jobrun-service", db, "8"], os.path.join(folder, "service.log"))
        done_sql, params = JOBRUN_DONE, ()
    else:
        db = os.path.join(folder, "huey.db")
        huey, _, _ = make_huey(db)
        huey.storage.close()
        service = Child(["_huey-consumer", db, "1", json.dumps(HUEY_DEFAULT_POLL)],
                        os.path.join(folder, "consumer.log"))
        done_sql, params = HUEY_RESULTS, (HUEY_NAME,)
    conn = connect(db, side)
    producer = Producer(side, db, rate_, seconds)
    service.go()
    time.sleep(1.0)  # the service's start-up writes are not a job's
    b0, c0 = write_bytes(service.pid), cpu_seconds(service.pid)
    producer.go()
    made = producer.result()
    n = made["jobs"]
    _, done = poll_count(conn, done_sql, params, n, 30, service.alive, interval=0.25)
    conn.close()
    time.sleep(0.5)
    b1, c1 = write_bytes(service.pid), cpu_seconds(service.pid)
    time.sleep(idle_s)
    b2 = write_bytes(service.pid)
    errors = service.stop()
    if errors:
        report.problems.append(f"{side} service stderr:\n{errors}")
    if done < n or b0 is None or b1 is None or b2 is None:
        report.problems.append(f"{side} bytes run: {done}/{n} done")
        return None
    out = {"producer": made["write_bytes"] / n, "service": (b1 - b0) / n,
           "cpu_us": (delta(c0, c1) or 0) / n * 1e6, "idle_bytes": float(b2 - b1)}
    log(f"  {side}: {n} jobs, per job: producer {out['producer'] / 1024:.1f} KB, service "
        f"{out['service'] / 1024:.1f} KB, service CPU {out['cpu_us']:.0f} us; "
        f"idle {idle_s:g} s after: {out['idle_bytes']:.0f} bytes")
    return out


def bench_bytes(tmp: str, rate_: float, seconds: float, idle_s: float, report: Report) -> None:
    j = bytes_run("jobrun", os.path.join(tmp, "bytes-jobrun"), rate_, seconds, idle_s, report)
    h = bytes_run("huey", os.path.join(tmp, "bytes-huey"), rate_, seconds, idle_s, report)
    if j is None or h is None:
        return
    jt, ht = (j["producer"] + j["service"]) / 1024, (h["producer"] + h["service"]) / 1024
    what = f"{rate_:g} jobs/s for {seconds:g} s, one enqueue each"
    report.add(Row(f"KB handed to storage per job, producer + service ({what})", jt, ht, "KB",
                   "<= 8 KB and <= 1/3 huey", jt <= 8 and jt <= ht / 3,
                   higher_is_better=False))
    report.add(Row("  (ref) producer KB per job", j["producer"] / 1024, h["producer"] / 1024,
                   "KB", higher_is_better=False))
    report.add(Row("  (ref) service KB per job", j["service"] / 1024, h["service"] / 1024,
                   "KB", higher_is_better=False))
    report.add(Row("  (ref) service CPU per job in that run", j["cpu_us"], h["cpu_us"], "us",
                   higher_is_better=False))
    report.add(Row(f"bytes the idle service writes in {idle_s:g} s", j["idle_bytes"],
                   h["idle_bytes"], "bytes", "0", j["idle_bytes"] == 0,
                   higher_is_better=False))
    report.extra["bytes"] = {"jobrun": j, "huey": h}


# ---------------------------------------------------------------------------------------
# 2. no-op backlog at default settings: throughput and CPU per job
# ---------------------------------------------------------------------------------------
def backlog_run(side: str, template: str, folder: str, n: int, timeout: float,
                report: Report) -> tuple[float, float] | None:
    """(jobs/s, service CPU us per job) working through the backlog of n."""
    db = fresh_copy(template, folder)
    params: tuple[Any, ...]
    if side == "jobrun":
        child = Child(["_jobrun-service", db, "8"], os.path.join(folder, "service.log"))
        sql, params, target = JOBRUN_DONE, (), n
    else:
        child = Child(["_huey-consumer", db, str(HUEY_BEST_WORKERS),
                       json.dumps(HUEY_FAST_POLL)],
                      os.path.join(folder, "consumer.log"))
        # Huey stores no result for None: count the jobs taken off its queue.
        sql, params, target = f"SELECT {n} - count(*) FROM task WHERE queue = ?", (HUEY_NAME,), n
    conn = connect(db, side)
    c0 = cpu_seconds(child.pid)
    start = child.go()
    end, done = poll_count(conn, sql, params, target, timeout, child.alive)
    c1 = cpu_seconds(child.pid)
    conn.close()
    errors = child.stop()
    if errors:
        report.problems.append(f"{side} backlog stderr:\n{errors}")
    if done < target:
        report.problems.append(f"{side} backlog: {done}/{n} after {timeout}s")
        return None
    return n / (end - start), (delta(c0, c1) or 0) / n * 1e6


def bench_throughput(tmp: str, n: int, repeat: int, report: Report) -> None:
    jt = jobrun_template(tmp, n, "tp-template")  # defaults
    ht = huey_template(tmp, n, "tp-huey-template", task="bench_none")  # no result stored
    best: dict[str, tuple[float, float]] = {}
    for i in range(repeat):
        for side, template in (("jobrun", jt), ("huey", ht)):
            r = backlog_run(side, template, os.path.join(tmp, f"tp-{side}-{i}"), n, 120, report)
            if r is None:
                continue
            log(f"  {side} run {i + 1}: {r[0]:,.0f} jobs/s, service CPU {r[1]:.0f} us per job")
            if side not in best or r[0] > best[side][0]:
                best[side] = r
    j, h = best.get("jobrun"), best.get("huey")
    report.add(Row(f"no-op jobs/s at defaults (C=8) vs huey 2 threads, no result (N={n:,})",
                   j[0] if j else None, h[0] if h else None, "jobs/s", ">= 10x huey",
                   bool(j and h and j[0] >= 10 * h[0])))
    report.add(Row("service CPU per no-op job (utime+stime / jobs), that run",
                   j[1] if j else None, h[1] if h else None, "us", "<= 40 us",
                   bool(j and j[1] <= 40), higher_is_better=False))


def run(args: argparse.Namespace) -> int:
    q = args.quick
    seconds = args.seconds or (10.0 if q else 30.0)
    n = args.n or (5_000 if q else 20_000)
    repeat = args.repeat or (1 if q else 3)
    idle_s = args.idle or (3.0 if q else 10.0)
    tmp = tempfile.mkdtemp(prefix="jobrun-bench-io-", dir=args.dir)
    report = Report(notes=machine_notes(tmp, huey=sqlite3.sqlite_version, remark=None) + [
        "both sides at their defaults: jobrun WAL + synchronous=NORMAL, concurrency 8; "
        "SqliteHuey WAL + synchronous=FULL, one worker, default polling (bytes row)",
        "write_bytes counts the pages a process dirtied (in the file cache, sent to the disk "
        "later): bytes handed to the storage layer, not a device's own write amplification",
    ])
    log("# jobrun vs huey: bytes, CPU and throughput per job" + (" (--quick)" if q else ""))
    print_notes(report.notes)
    only = set(args.only.split(",")) if args.only else set(METRICS)
    try:
        if "bytes" in only:
            log(f"\n1. bytes per job: {args.rate:g} jobs/s for {seconds:g} s")
            bench_bytes(tmp, args.rate, seconds, idle_s, report)
        if "throughput" in only:
            log(f"\n2. no-op backlog of {n:,} at defaults")
            bench_throughput(tmp, n, repeat, report)
    finally:
        finish(tmp, args.keep, report)
    close_report(report, "huey", args.json, extra=report.extra)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("_jobrun-producer", "_huey-producer"):
        produce_ = produce_jobrun if argv[0] == "_jobrun-producer" else produce_huey
        return produce_(argv[1], float(argv[2]), float(argv[3]))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="shorter runs (about a minute)")
    p.add_argument("--rate", type=float, default=20.0, help="jobs/s of the bytes run")
    p.add_argument("--seconds", type=float, help="length of the bytes run (30)")
    p.add_argument("--idle", type=float, help="seconds the idle service is watched (10)")
    p.add_argument("--n", type=int, help="jobs of the backlog run (20,000)")
    p.add_argument("--repeat", type=int, help="backlog runs per side, best kept (3)")
    p.add_argument("--only", metavar="LIST", help=f"comma-separated subset of {','.join(METRICS)}")
    p.add_argument("--dir", help="where the temp dir goes (a disk, not tmpfs: write_bytes)")
    output_options(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
