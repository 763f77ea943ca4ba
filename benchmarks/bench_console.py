"""`jobrun top`'s reads on a store of a million jobs: what one console refresh costs.

A refresh is one `snapshot.take` (queues, with a kept finished-jobs window) and one page of
the jobs list; opening a job adds one `get`. The store is built once with plain SQL inserts
(a mix of states: mostly succeeded, some queued, dead, retrying, cancelled), then each read
is timed warm, best of 5. Run: `.venv/bin/python benchmarks/bench_console.py [--jobs N] [--mix busy|rare]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import apsw

from jobrun.store.sqlite import SqliteStore
from jobrun.tui import browse, snapshot
from jobrun.tui.snapshot import Window, take

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
        take(store, now=time.time(), window=window)
        browse.page(store, "dead")

    ms = best(refresh)
    print(f"\none console refresh (snapshot + a page of dead): {ms:.1f} ms; target < "
          f"{TARGET_MS:.0f} ms: {'met' if ms < TARGET_MS else 'NOT met'}")
    store.close()


if __name__ == "__main__":
    main()
