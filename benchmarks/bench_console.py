"""`jobrun top`'s reads on a store of a million jobs: what one console refresh costs.

A refresh is one `snapshot.take` (queues, with a kept finished-jobs window) and one page of
the jobs list; opening a job adds one `get`. The store is built once with plain SQL inserts
(a mix of states: mostly succeeded, some queued, dead, retrying, cancelled), then each read
is timed warm, best of 5. With `--load N`, N more jobs of a real no-op task are queued and a
real service (`jobrun start`, 8 threads) works through them while the console's refreshes are
timed again, one after another: the median, p95 and slowest refresh of the queries, and the
slowest single read, so that a read made slow by the writer shows by name.
Run: `.venv/bin/python benchmarks/bench_console.py [--jobs N] [--mix busy|rare] [--load N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import apsw

from _common import Subprocess, child_env
from jobrun import clock
from jobrun.store.sqlite import SqliteStore
from jobrun.tui import browse, snapshot
from jobrun.tui.snapshot import take
from jobrun.tui.window import Window

TARGET_MS = 50.0  # the bound on one refresh's queries

MIXES = {
    "busy": ["succeeded"] * 90 + ["dead"] * 2 + ["queued"] * 6 + ["retrying", "cancelled"],
    # a quiet store: a few dead, queued and retrying jobs among a million succeeded ones
    "rare": ["succeeded"] * 99_996 + ["dead", "queued", "retrying", "cancelled"],
}


def build(path: str, n: int, mix: list[str]) -> None:
    SqliteStore(path).close()
    now = time.time()
    rnd = random.Random(7)

    def rows() -> Iterator[tuple[Any, ...]]:
        for i in range(1, n + 1):
            st = rnd.choice(mix)
            done = now - (n - i) * 3600 / n if st in ("succeeded", "dead", "cancelled") else None
            yield (f"app.tasks:t{i % 50}", f"q{i % 3}", json.dumps([i, f"user{i}@example.com"]),
                   st, 1, 3, now + i % 100 if st == "retrying" else now - 1, now - 1, done)

    conn = apsw.Connection(path)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO jobs (task, queue, args, state, attempts, max_attempts, "
                     "run_at, enqueued_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?)", rows())
    conn.execute("COMMIT")
    conn.close()


def enqueue_load(path: str, n: int) -> None:
    """`n` queued no-op jobs on queue `load`, as plain inserts (the store is not the bench)."""
    now = time.time()
    conn = apsw.Connection(path)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO jobs (task, queue, args, state, attempts, max_attempts, "
                     "run_at, enqueued_at) VALUES ('benchtasks:noop', 'load', ?, 'queued', 0, "
                     "1, ?, ?)", ((json.dumps([i]), now, now) for i in range(n)))
    conn.execute("COMMIT")
    conn.close()


TASKS = "import jobrun\n\napp = jobrun.App()\n\n\n@app.task(queue='load')\ndef noop(i: int) -> int:\n    return i\n"


def timed_reads(store: SqliteStore) -> dict[str, float]:
    """The store's dashboard reads made to time each one (ms, summed per block name)."""
    times: dict[str, float] = {}
    plain = store.dashboard

    class Timed:
        def __enter__(self) -> Callable[[str, dict[str, Any]], Any]:
            self.inner = plain()
            read = self.inner.__enter__()

            def one(name: str, params: dict[str, Any]) -> Any:
                t = time.perf_counter()
                try:
                    return read(name, params)
                finally:
                    times[name] = times.get(name, 0.0) + (time.perf_counter() - t) * 1000
            return one

        def __exit__(self, *exc: object) -> None:
            self.inner.__exit__(*exc)

    store.dashboard = Timed  # type: ignore[method-assign,assignment]
    return times


def under_load(folder: str, path: str, n: int, window: Window) -> None:
    """Refreshes timed while a real service works through `n` jobs."""
    with open(os.path.join(folder, "benchtasks.py"), "w") as f:
        f.write(TASKS)
    cfg = os.path.join(folder, "jobrun.toml")
    with open(cfg, "w") as f:
        f.write(f'[jobrun]\nstore = "{path}"\nimport = ["benchtasks"]\nlog_level = "WARNING"\n'
                "[queues.load]\nconcurrency = 8\n")
    enqueue_load(path, n)
    store = SqliteStore(path, readonly=True)
    take(store, now=time.time(), window=window)
    times = timed_reads(store)
    service = Subprocess([sys.executable, "-m", "jobrun.cli", "start", "--config", cfg],
                         os.path.join(folder, "service.log"), stop_wait=60, cwd=folder,
                         env=child_env())
    refreshes: list[float] = []
    slowest: dict[str, float] = {}
    left = n
    try:
        deadline = clock.monotonic() + 600
        while clock.monotonic() < deadline:
            times.clear()
            snap = take(store, now=time.time(), window=window, failures=False)
            browse.page(store, "dead")
            total = sum(times.values())
            left = sum(q.queued + q.running for q in snap.queues if q.name == "load")
            if left < n:  # the service has started on them
                refreshes.append(total)
                for k, v in times.items():
                    slowest[k] = max(slowest.get(k, 0.0), v)
            if left == 0:
                break
            time.sleep(0.1)
    finally:
        service.stop()
        store.close()
    refreshes.sort()
    pick = refreshes[len(refreshes) // 2], refreshes[int(len(refreshes) * 0.95)], refreshes[-1]
    print(f"\nunder load ({n - left:,} of {n:,} jobs done by a service while measured, "
          f"{len(refreshes)} refreshes of the console's queries, ms): median {pick[0]:.1f}, "
          f"p95 {pick[1]:.1f}, slowest {pick[2]:.1f}; target < {TARGET_MS:.0f} ms: "
          f"{'met' if pick[1] < TARGET_MS else 'NOT met'}")
    print("slowest single read of each kind under load (ms): " + ", ".join(
        f"{k} {v:.1f}" for k, v in sorted(slowest.items(), key=lambda kv: -kv[1])))


def best(f: Callable[[], object], n: int = 5) -> float:
    f()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--mix", choices=sorted(MIXES), default="busy")
    ap.add_argument("--load", type=int, default=0, help="jobs a service works through while "
                    "the refreshes are timed again (0: not)")
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="jobrun-console-")
    os.chmod(folder, 0o700)
    path = os.path.join(folder, "jobs.db")
    t = time.perf_counter()
    build(path, args.jobs, MIXES[args.mix])
    print(f"store of {args.jobs:,} jobs ({args.mix}) built in {time.perf_counter() - t:.1f}s")
    store = SqliteStore(path, readonly=True)
    window = Window()
    t = time.perf_counter()
    take(store, now=time.time(), window=window)  # a console opening: the hour's charts read
    print(f"first snapshot (reads the last hour's finished jobs for the charts): "
          f"{(time.perf_counter() - t) * 1000:.0f} ms, once per console")
    rows = [("snapshot (queues; kept window)", lambda: take(store, now=time.time(),
                                                            window=window))]
    for state in browse.STATES:
        rows.append((f"page of {state}", lambda s=state: browse.page(store, s)))
        rows.append((f"page of {state}, queue q1", lambda s=state: browse.page(store, s,
                                                                              queue="q1")))
    rows.append(("page of dead, filter matching some", lambda: browse.page(
        store, "dead", text="user99")))
    for state in ("dead", "queued", "succeeded"):
        rows.append((f"page of {state}, filter matching nothing",
                     lambda s=state: browse.page(store, s, text="zzzz")))
    later = browse.page(store, "dead")
    for _ in range(50):
        later = browse.page(store, "dead", after=later.after)
    rows.append(("51st page of dead (keyset)", lambda: browse.page(store, "dead",
                                                                   after=later.after)))
    rows.append(("one job (get)", lambda: store.get(args.jobs // 2)))
    for name in ("top_counts", "top_running", "top_queues"):
        def one(q: str = name) -> object:
            with store.dashboard() as read:
                return read(q, {"limit": snapshot.RUNNING} if q == "top_running" else {})
        rows.append((f"  of which {name}", one))
    print("| read | ms (best of 5, warm) |\n|---|---|")
    for name, f in rows:
        print(f"| {name} | {best(f):.2f} |")

    def refresh() -> None:  # what the console does each tick: the queues and a jobs page
        take(store, now=time.time(), window=window, failures=False)
        browse.page(store, "dead")

    ms = best(refresh)
    print(f"\none console refresh (snapshot + a page of dead): {ms:.1f} ms; target < "
          f"{TARGET_MS:.0f} ms: {'met' if ms < TARGET_MS else 'NOT met'}")
    store.close()
    if args.load:
        under_load(folder, path, args.load, window)


if __name__ == "__main__":
    main()
