"""Busy store: four processes, each running a service (`App.start()`) AND a producer on the
same store file, enqueue and work their jobs at once (single enqueues and small batches,
with reads in between; the tasks write a ledger row each, on connections of their own).

No BusyError reaches the API: no exception from any enqueue, read or drain, no
StoreError / BusyError / "locked" / failed round in any log, and the CLI's read commands
(`jobrun stats --json`, `jobrun ls --json`), run meanwhile, all answer. Each job is claimed by one
attempt at a time: the ledger shows no two overlapping executions of one job, its attempts
are 1..n in order, and match the job's `attempts` (one run each: nothing failed).

Short (default): 4 x 500 jobs. `--long`: 4 x 5,000.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import stormapp

from crashapp.harness import JOBRUN, Reader

PROCS = 4
BAD = ("BusyError", "StoreError", "locked", "round failed", "Traceback")


@pytest.mark.torture
def test_four_busy_processes_no_busy_error_one_attempt_at_a_time(
        tmp_path: Path, long: bool) -> None:
    n, spread = (5_000, 20.0) if long else (500, 2.0)
    # `concurrency` caps the queue across the host: 32 lets every service claim.
    cfg = stormapp.write_config(tmp_path, concurrency=32, jobrun_extra="shutdown_timeout = 10")
    store = str(tmp_path / "jobs.db")
    # The store and the ledger exist before the four race to open them.
    import jobrun

    jobrun.App.from_config(cfg).close()
    stormapp.ledger_schema(store)
    start_at = time.time() + 2.0
    cli_runs: list[subprocess.CompletedProcess[str]] = []
    stop_cli = threading.Event()

    def cli_reads() -> None:
        """An operator looking on meanwhile: the CLI's read commands."""
        while not stop_cli.is_set():
            for args in (["stats", "--json"], ["ls", "--json", "--limit", "5"]):
                cli_runs.append(subprocess.run(
                    [*JOBRUN, *args, "--config", cfg], capture_output=True, text=True,
                    timeout=60, check=False, env=stormapp.env()))
    procs = []
    logs = []
    outs = []
    t0 = time.monotonic()
    try:
        for i in range(PROCS):
            out = str(tmp_path / f"busy-{i}.json")
            log = open(tmp_path / f"busy-{i}.log", "wb")
            logs.append(log)
            outs.append(out)
            code = (f"import stormapp; stormapp.busy_main({cfg!r}, {n}, {n * PROCS}, "
                    f"'p{i}', {out!r}, {start_at!r}, {spread!r})")
            procs.append(subprocess.Popen([sys.executable, "-c", code], stdout=log,
                                          stderr=subprocess.STDOUT, env=stormapp.env(),
                                          cwd=str(tmp_path)))
        time.sleep(max(0.0, start_at - time.time()))
        looker = threading.Thread(target=cli_reads, daemon=True)
        looker.start()
        for p in procs:
            p.wait(timeout=120 if not long else 600)
        stop_cli.set()
        looker.join(60)
    finally:
        stop_cli.set()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        for log in logs:
            log.close()
    elapsed = time.monotonic() - t0

    results = []
    for i, (p, out) in enumerate(zip(procs, outs)):
        text = (tmp_path / f"busy-{i}.log").read_text(errors="replace")
        assert p.returncode == 0, f"process {i} exited {p.returncode}:\n{text[-3000:]}"
        r = json.loads(Path(out).read_text())
        results.append(r)
        # No exception reached the API, nothing bad in any log line of jobrun's.
        assert r["errors"] == [], f"process {i}: exceptions from the API:\n" + \
            "\n".join(r["errors"][:3])
        bad = [ln for ln in r["log"] + text.splitlines() if any(b in ln for b in BAD)]
        assert not bad, f"process {i}: {bad[:10]}"
        assert len(r["enqueued"]) == n

    assert cli_runs, "the CLI never ran"
    for r in cli_runs:
        assert r.returncode == 0 and not any(b in r.stderr for b in BAD), \
            (r.args, r.returncode, r.stderr[-2000:])
        json.loads(r.stdout)

    db = Reader(store)
    ids = [j for r in results for j in r["enqueued"]]
    assert len(set(ids)) == n * PROCS, "two enqueues returned the same job id"
    states = dict(db.all("SELECT state, count(*) FROM jobs GROUP BY state"))
    assert states == {"succeeded": n * PROCS}, states
    runs: dict[int, list[tuple[int, int, float, float]]] = defaultdict(list)
    for job_id, attempt, pid, a, b in db.all(
            "SELECT job_id, attempt, pid, t0, t1 FROM ledger ORDER BY t0"):
        runs[job_id].append((attempt, pid, a, b))
    attempts = dict(db.all("SELECT id, attempts FROM jobs"))
    assert set(runs) == set(attempts), "a job succeeded without running, or a ledger row " \
                                       "names no job"
    overlaps = []
    for job_id, rs in runs.items():
        for x, y in itertools.pairwise(rs):
            if y[2] < x[3]:
                overlaps.append((job_id, x, y))
        assert [a for a, *_ in rs] == list(range(1, len(rs) + 1)), (job_id, rs)
        assert attempts[job_id] == len(rs), (job_id, attempts[job_id], rs)
    assert not overlaps, f"overlapping executions of one job: {overlaps[:5]}"
    twice = {j: rs for j, rs in runs.items() if len(rs) > 1}
    assert not twice, f"jobs run more than once with nothing failing: {list(twice.items())[:5]}"
    workers = Counter(pid for rs in runs.values() for _, pid, _, _ in rs)
    assert db.one("PRAGMA integrity_check") == "ok"
    db.close()
    phases = ", ".join(f"{r['enqueue_s']:.1f}s" for r in results)
    print(f"{PROCS} x {n} jobs in {elapsed:.1f}s (enqueue phases {phases}); runs per process "
          f"{sorted(workers.values())}; {len(cli_runs)} CLI reads meanwhile")
