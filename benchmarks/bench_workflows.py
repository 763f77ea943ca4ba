"""Durable workflows: recorded steps per second, jobrun beside DBOS Transact (on SQLite).

    .venv/bin/python benchmarks/bench_workflows.py           # N=300 workflows per row
    .venv/bin/python benchmarks/bench_workflows.py --quick   # N=60
    .venv/bin/python benchmarks/bench_workflows.py --no-dbos

The flow: a workflow of 10 no-op steps (each recorded). Rows:
- jobrun, one thread: `jobrun.testing.inline` runs each workflow to its end in the caller's
  thread (enqueue, claim, 10 step records, result), like DBOS calling a workflow directly.
- jobrun, service: N workflows enqueued, a service (`App.start()`, 8 threads) runs them all.
- DBOS (`dbos` package, SQLite system database), one thread, workflows called directly.
- overhead: a 10-step workflow minus a plain task making the same 10 calls (both inline,
  interleaved; mean and median), and minus 10 bare calls: what the records cost.
jobrun runs at both durabilities (`normal`: synchronous=NORMAL, `full`: a sync per commit as
DBOS does). Each side runs in its own subprocess and temp dir.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

STEPS = 10


def side_jobrun(n: int, durability: str, mode: str) -> dict[str, Any]:
    import logging

    import jobrun
    import jobrun.testing
    from jobrun.config import QueueConfig, Settings

    logging.getLogger("jobrun").setLevel(logging.WARNING)
    d = tempfile.mkdtemp(prefix="bench-wf-")
    app = jobrun.App(os.path.join(d, "jobs.db"), settings=Settings(
        durability=durability, poll=0.05,
        queues={"default": QueueConfig("default", concurrency=8)}))

    @app.step
    def noop(i: int) -> int:
        return i

    def plain(i: int) -> int:
        return i

    @app.workflow
    def flow(k: int) -> int:
        for i in range(STEPS):
            noop(i)
        return k

    @app.task
    def calls(k: int) -> int:
        for i in range(STEPS):
            plain(i)
        return k

    out: dict[str, Any] = {}
    if mode == "inline":
        with jobrun.testing.inline(app):
            flow.enqueue(-1)
            calls.enqueue(-1)
            wfs: list[float] = []
            tasks: list[float] = []
            for k in range(n):  # interleaved: a noisy disk slows both alike
                t = time.perf_counter()
                flow.enqueue(k)
                t1 = time.perf_counter()
                calls.enqueue(k)
                wfs.append(t1 - t)
                tasks.append(time.perf_counter() - t1)
            wf, task = sum(wfs) / n, sum(tasks) / n
            out["over_task_median_ms"] = (statistics.median(wfs) -
                                          statistics.median(tasks)) * 1e3
        t = time.perf_counter()
        for _ in range(n):
            for i in range(STEPS):
                plain(i)
        bare = (time.perf_counter() - t) / n
        out.update(steps_per_s=STEPS / wf, workflow_ms=wf * 1e3, task_ms=task * 1e3,
                   over_task_ms=(wf - task) * 1e3, over_bare_ms=(wf - bare) * 1e3)
    else:
        jobs = app.enqueue_many([flow.call(k) for k in range(n)])
        t = time.perf_counter()
        app.start()
        jobs[-1].result(timeout=600)
        while app.store.counts().get("succeeded", 0) < n:
            time.sleep(0.01)
        dt = time.perf_counter() - t
        out.update(steps_per_s=n * STEPS / dt, seconds=dt)
    app.close()
    return out


def side_dbos(n: int) -> dict[str, Any]:
    import logging

    from dbos import DBOS

    logging.getLogger("dbos").setLevel(logging.WARNING)
    d = tempfile.mkdtemp(prefix="bench-dbos-")
    DBOS(config={"name": "bench", "system_database_url": f"sqlite:///{d}/dbos.sqlite",
                 "log_level": "WARNING"})

    @DBOS.step()
    def noop(i: int) -> int:
        return i

    @DBOS.workflow()
    def flow(k: int) -> int:
        for i in range(STEPS):
            noop(i)
        return k

    DBOS.launch()
    flow(-1)
    t = time.perf_counter()
    for k in range(n):
        flow(k)
    dt = (time.perf_counter() - t) / n
    DBOS.destroy()
    return {"steps_per_s": STEPS / dt, "workflow_ms": dt * 1e3}


def run_side(*args: str) -> dict[str, Any]:
    r = subprocess.run([sys.executable, __file__, "--side", *args], capture_output=True,
                       text=True, timeout=900)
    if r.returncode != 0:
        return {"error": (r.stderr or r.stdout).strip().splitlines()[-1:]}
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-dbos", action="store_true")
    p.add_argument("--side", nargs="+")
    a = p.parse_args()
    if a.side:
        kind, n = a.side[0], int(a.side[1])
        res = side_dbos(n) if kind == "dbos" else side_jobrun(n, a.side[2], a.side[3])
        print(json.dumps(res))
        return
    n = 60 if a.quick else 300
    print(f"load average at start: {os.getloadavg()[0]:.2f}; N={n} workflows of {STEPS} steps")
    rows: dict[str, dict[str, Any]] = {}
    for dur in ("normal", "full"):
        rows[f"jobrun inline {dur}"] = run_side("jobrun", str(n), dur, "inline")
        rows[f"jobrun service {dur}"] = run_side("jobrun", str(n * 4), dur, "service")
    if not a.no_dbos:
        rows["dbos sqlite"] = run_side("dbos", str(max(20, n // 3)))
    dbos = rows.get("dbos sqlite", {}).get("steps_per_s")
    print("\n| row | steps/s | ms per workflow | x DBOS |\n|---|---|---|---|")
    for name, r in rows.items():
        if "error" in r:
            print(f"| {name} | error: {r['error']} | | |")
            continue
        ratio = f"{r['steps_per_s'] / dbos:.1f}x" if dbos else "-"
        ms = f"{r['workflow_ms']:.3f}" if "workflow_ms" in r else "-"
        print(f"| {name} | {r['steps_per_s']:,.0f} | {ms} | {ratio} |")
    for dur in ("normal", "full"):
        r = rows[f"jobrun inline {dur}"]
        if "error" not in r:
            print(f"\noverhead of a 10-step workflow ({dur}): {r['over_task_ms']:.3f} ms over a "
                  f"task making 10 plain calls (median {r['over_task_median_ms']:.3f} ms), "
                  f"{r['over_bare_ms']:.3f} ms over 10 bare calls (target < 2 ms)")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
