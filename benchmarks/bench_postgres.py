#!/usr/bin/env python
"""jobrun on PostgreSQL beside procrastinate, on the same server in one run, as ratios.

    .venv/bin/python benchmarks/bench_postgres.py            # full run (~2 min)
    .venv/bin/python benchmarks/bench_postgres.py --quick    # smaller N (~40 s)

The server is $JOBRUN_TEST_PG (default postgresql://postgres@127.0.0.1:5432/test); each run
gets schemas of its own, dropped at the end. Needs the `bench` and `postgres` extras.
Metrics (see benchmarks/README.md):
  1. single enqueue calls from this process, one transaction each, no worker running
  2. no-op jobs end to end with 1, 2 and 4 services (jobrun `jobrun start` processes, 8
     threads each; procrastinate worker processes, concurrency 8 each): N jobs enqueued
     first, throughput from the store's own timestamps (first start to last finish), so
     process start-up is not counted on either side
  3. enqueue-to-start latency to one idle service (store timestamps), p50 and p99
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from _common import (
    HERE,
    Report,
    Row,
    Subprocess,
    child_env,
    load_average,
    log,
    markdown,
    pct,
    poll_count,
    print_notes,
    rate,
    tree_state,
    write_json,
)

SERVER = os.environ.get("JOBRUN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PEER = "procrastinate"


@contextmanager
def schema() -> Iterator[str]:
    """A URL on a new schema of the server, dropped afterwards."""
    import psycopg

    name = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    sep = "&" if "?" in SERVER else "?"
    try:
        yield f"{SERVER}{sep}options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def env_for(url: str) -> dict[str, str]:
    return child_env(here=True, BENCH_PG_PEER=url, JOBRUN_STORE=url)


# -- the two sides -------------------------------------------------------------------------
class Side:
    """One queue under test; its store read with its own SQL: jobs done (DONE), seconds from
    the first start to the last finish (SPAN), enqueue-to-start per job in order (LAT)."""

    name = ""
    DONE = SPAN = LAT = ""

    def __init__(self, url: str, tmp: str) -> None:
        self.url, self.tmp = url, tmp

    def enqueue_one(self, i: int) -> None: ...
    def enqueue_bulk(self, n: int) -> None: ...
    def service(self, k: int) -> Subprocess: ...
    def close(self) -> None: ...

    def span(self, conn: Any) -> float:
        return float(conn.execute(self.SPAN).fetchone()[0])

    def latencies(self, conn: Any) -> list[float]:
        return [float(r[0]) for r in conn.execute(self.LAT).fetchall()]


class Jobrun(Side):
    name = "jobrun"
    DONE = "SELECT count(*) FROM jobs WHERE state = 'succeeded'"
    SPAN = "SELECT max(finished_at) - min(started_at) FROM jobs"
    LAT = "SELECT started_at - enqueued_at FROM jobs WHERE started_at IS NOT NULL ORDER BY id"

    def __init__(self, url: str, tmp: str) -> None:
        super().__init__(url, tmp)
        import jobrun
        import pg_tasks  # noqa: F401 - the task registered here too

        self.app = jobrun.App(url)
        self.app.store  # noqa: B018 - opened (its schema made) now, as the peer's apply_schema
        self.cfg = os.path.join(tmp, f"jobrun-{uuid.uuid4().hex[:6]}.toml")
        with open(self.cfg, "w") as f:
            f.write(f'[jobrun]\nstore = {json.dumps(url)}\nimport = ["pg_tasks"]\n'
                    "[queues.default]\nconcurrency = 8\n")

    def enqueue_one(self, i: int) -> None:
        self.app.enqueue("pg_tasks:noop", [i])

    def enqueue_bulk(self, n: int) -> None:
        import jobrun

        for start in range(0, n, 1000):
            self.app.enqueue_many([jobrun.Call("pg_tasks:noop", (i,), {}, {})
                                   for i in range(start, min(n, start + 1000))])

    def service(self, k: int) -> Subprocess:
        return Subprocess([sys.executable, "-m", "jobrun.cli", "start", "--config", self.cfg,
                           "--log-level", "warning"],
                          os.path.join(self.tmp, f"jobrun-{k}-{uuid.uuid4().hex[:4]}.log"),
                          stop_wait=20, cwd=HERE, env=env_for(self.url))

    def close(self) -> None:
        self.app.close()


class Procrastinate(Side):
    name = PEER
    DONE = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
    SPAN = ("SELECT extract(epoch FROM max(at) FILTER (WHERE type = 'succeeded') - "
            "min(at) FILTER (WHERE type = 'started')) FROM procrastinate_events")
    LAT = ("SELECT extract(epoch FROM s.at - d.at) FROM procrastinate_events s JOIN "
           "procrastinate_events d ON d.job_id = s.job_id AND d.type = 'deferred' "
           "WHERE s.type = 'started' ORDER BY s.job_id")

    def __init__(self, url: str, tmp: str) -> None:
        super().__init__(url, tmp)
        os.environ["BENCH_PG_PEER"] = url
        import pg_tasks

        self.papp: Any = pg_tasks.peer_app(sync=True)
        self.papp.open()
        self.papp.schema_manager.apply_schema()
        self.task = self.papp.tasks["noop"]

    def enqueue_one(self, i: int) -> None:
        self.task.defer(i=i)

    def enqueue_bulk(self, n: int) -> None:
        for start in range(0, n, 1000):
            self.task.batch_defer(*({"i": i} for i in range(start, min(n, start + 1000))))

    def service(self, k: int) -> Subprocess:
        return Subprocess([sys.executable, os.path.abspath(__file__), "_peer-worker"],
                          os.path.join(self.tmp, f"peer-{k}-{uuid.uuid4().hex[:4]}.log"),
                          stop_wait=20, cwd=HERE, env=env_for(self.url))

    def close(self) -> None:
        self.papp.close()


SIDES: list[type[Side]] = [Jobrun, Procrastinate]


# -- the measurements ----------------------------------------------------------------------
def wait_done(side: Side, conn: Any, n: int, procs: list[Subprocess], timeout: float) -> int:
    """Jobs done once n are, the deadline passes or a service dies."""
    return int(poll_count(conn, side.DONE, (), n, timeout,
                          lambda: all(p.alive() for p in procs))[1])


def run_side(kind: type[Side], tmp: str, q: bool, problems: list[str]) -> dict[str, float]:
    import psycopg

    out: dict[str, float] = {}
    n1, n2, m = (300, 3000, 40) if q else (1000, 10000, 100)
    with schema() as url:
        side = kind(url, tmp)
        out["enqueue"] = rate(n1, lambda: list(map(side.enqueue_one, range(n1))))
        side.close()
    for k in (1, 2, 4):
        with schema() as url, psycopg.connect(url, autocommit=True) as conn:
            side = kind(url, tmp)
            side.enqueue_bulk(n2)
            procs = [side.service(k) for _ in range(k)]
            got = wait_done(side, conn, n2, procs, 300)
            for p in procs:
                if err := p.stop():
                    problems.append(f"{side.name} x{k}: {err.splitlines()[-1][:200]}")
            if got < n2:
                problems.append(f"{side.name} x{k}: {got}/{n2} done")
            out[f"e2e{k}"] = got / side.span(conn) if got else 0.0
            side.close()
    with schema() as url, psycopg.connect(url, autocommit=True) as conn:
        side = kind(url, tmp)
        proc = side.service(0)
        side.enqueue_one(-1)  # warm: the service is up and idle once this one is done
        wait_done(side, conn, 1, [proc], 60)
        for i in range(m):
            time.sleep(0.02)
            side.enqueue_one(i)
            wait_done(side, conn, i + 2, [proc], 30)
        lat = side.latencies(conn)[1:]  # not the first: it waited for the start-up
        proc.stop()
        side.close()
        out["p50"], out["p99"] = pct(lat, 50) * 1000, pct(lat, 99) * 1000
    return out


def enqueue_only(n: int, chunk: int = 50) -> None:
    """Metric 1 alone, the sides taking turns every `chunk` enqueues on one schema each: on
    a shared machine the server's commit latency drifts, and both sides see the same drift."""
    import contextlib
    import tempfile

    tmp = tempfile.mkdtemp(prefix="bench-pg-")
    spent = {k.name: 0.0 for k in SIDES}
    with contextlib.ExitStack() as stack:
        sides = [kind(stack.enter_context(schema()), tmp) for kind in SIDES]
        for side in sides:
            stack.callback(side.close)
            side.enqueue_one(-1)  # connected and prepared before the clock starts
        for start in range(0, n, chunk):
            for side in sides:
                t = time.perf_counter()
                for i in range(start, start + chunk):
                    side.enqueue_one(i)
                spent[side.name] += time.perf_counter() - t
    j, p = n / spent["jobrun"], n / spent[PEER]
    log(f"single enqueue, {n} each, taking turns every {chunk}: jobrun {j:,.0f}/s, {PEER} "
        f"{p:,.0f}/s, ratio {j / p:.2f}x (load {load_average()})")
    subprocess.run(["rm", "-rf", tmp], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--only", choices=["enqueue"],
                        help="measure the single enqueue alone, the sides taking turns")
    args = parser.parse_args()
    if args.only == "enqueue":
        return enqueue_only(600 if args.quick else 4000)
    import tempfile

    tmp = tempfile.mkdtemp(prefix="bench-pg-")
    log(f"# jobrun on PostgreSQL vs {PEER} (commit {tree_state()}; load {load_average()})")
    report = Report()
    res = {}
    for kind in SIDES:
        log(f"measuring {kind.name} ...")
        res[kind.name] = run_side(kind, tmp, args.quick, report.problems)
    j, p = res["jobrun"], res[PEER]
    report.add(Row("single enqueue, one transaction each", j["enqueue"], p["enqueue"],
                   "jobs/s", ">= 2x", j["enqueue"] >= 2 * p["enqueue"]))
    for k in (1, 2, 4):
        key = f"e2e{k}"
        report.add(Row(f"no-op jobs end to end, {k} service(s) x 8", j[key], p[key], "jobs/s",
                       ">= 2x", j[key] >= 2 * p[key]))
    for q in ("p50", "p99"):
        report.add(Row(f"enqueue-to-start latency {q}", j[q], p[q], "ms", "lower"))
    grows = j["e2e2"] > j["e2e1"]
    report.notes.append(f"jobrun throughput 1 -> 2 -> 4 services: {j['e2e1']:,.0f} -> "
                        f"{j['e2e2']:,.0f} -> {j['e2e4']:,.0f} jobs/s "
                        f"({'grows' if grows else 'does not grow'} from 1 to 2; 2 cores here, "
                        "shared with the server)")
    report.notes.append(f"load average at the end: {load_average()}")
    log("\n" + markdown(report.rows, PEER))
    print_notes(report.notes)
    for prob in report.problems:
        log(f"- problem: {prob}")
    write_json(args.json, report, PEER)
    subprocess.run(["rm", "-rf", tmp], check=False)


if __name__ == "__main__":
    if sys.argv[1:2] == ["_peer-worker"]:
        sys.path.insert(0, HERE)
        import pg_tasks

        pg_tasks.peer_worker(8)
    else:
        main()
