"""Start-up wall time of `jobrun ls`, `jobrun --help` and `import jobrun` beside `python -c pass`.

Every command is a fresh process of the same interpreter, timed from spawn to exit; the rows
alternate within each round so the machine's noise falls on all of them alike. The store is
small (20 jobs), made once before the runs. The ratio is each command's median over the bare
interpreter's median; the target (issue 14) is `jobrun ls` at most 3x.

    .venv/bin/python benchmarks/bench_startup.py            # 30 runs of each
    .venv/bin/python benchmarks/bench_startup.py --n 100
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from _common import Row, child_env, console_script, fmt, load_average, log, markdown

PY = sys.executable


def make_store(path: str) -> None:
    code = (f"import jobrun; app = jobrun.App({path!r})\n"
            "@app.task\ndef noop(i): pass\n"
            "app.enqueue_many([noop.call(i) for i in range(20)])")
    subprocess.run([PY, "-c", code], check=True, stderr=subprocess.DEVNULL)


def wall(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                   check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30, help="runs of each command")
    ap.add_argument("--no-bytecode", action="store_true",
                    help="PYTHONDONTWRITEBYTECODE=1: every run compiles jobrun from source")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="jobrun-bench-startup-")
    try:
        store = os.path.join(tmp, "jobs.db")
        make_store(store)
        env = child_env(JOBRUN_STORE=store)  # no user data dir, no config looked up
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if not a.no_bytecode:
            # As after `pip install` (which compiles every module): bytecode cached, here
            # in a folder of its own, written by the warm-up runs. Without it every start
            # compiles jobrun's modules from source again.
            env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")
        else:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        # The installed `jobrun` script (what a user runs), else the same through -c.
        jr = console_script("jobrun") or [PY, "-c", "from jobrun.cli import main; main()"]
        cmds = {
            "python -c pass": [PY, "-c", "pass"],
            "import jobrun": [PY, "-c", "import jobrun"],
            "jobrun ls (20 jobs, piped)": [*jr, "ls"],
            "jobrun --help": [*jr, "--help"],
        }
        log(f"{PY}; {a.n} runs each, alternating; "
            f"{'no bytecode cache' if a.no_bytecode else 'bytecode cached'}; "
            f"load average {load_average()}")
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for cmd in cmds.values():
            wall(cmd, env)  # warm the page cache, write the bytecode
        for _ in range(a.n):
            for name, cmd in cmds.items():
                times[name].append(wall(cmd, env))
        base = statistics.median(times["python -c pass"])
        floor = min(times["python -c pass"])
        rows = []
        for name, ts in times.items():
            med = statistics.median(ts)
            log(f"{name:28} median {fmt(med * 1000, 'ms'):>10} ({med / base:.2f}x)  "
                f"min {fmt(min(ts) * 1000, 'ms'):>10} ({min(ts) / floor:.2f}x)")
            if name == "python -c pass":
                continue
            target = "<= 3x" if name.startswith("jobrun ls") else "info"
            rows.append(Row(name, med * 1000, base * 1000, "ms", target,
                            med / base <= 3 if target != "info" else None))
        log("(on a loaded machine the minimum is the steadier figure: every run shares the "
            "wait for a core, which the medians carry and the ratio of medians flattens)")
        log(f"load average at the end: {load_average()}\n")
        log(markdown(rows, "python -c pass"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
