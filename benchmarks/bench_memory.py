"""Resident memory (VmRSS) of an idle `jobrun start --config X` beside an idle `huey_consumer`.

Both are fresh processes started in the same run, each on its own empty store, at their
defaults: jobrun with a config naming one task module (so the config watcher runs too) and
the default queue (8 thread slots); Huey's consumer on a SqliteHuey with one task, one
worker thread (its default), bare (see HUEY_OPTIONAL) and as installed. Each is left idle for `--idle` seconds after it is up, then
VmRSS (and VmHWM, the peak) is read from /proc/PID/status. Rounds alternate; the medians
are compared. The target (issue 14): jobrun at most Huey's consumer.

    .venv/bin/python benchmarks/bench_memory.py             # 3 rounds of 3 s idle
    .venv/bin/python benchmarks/bench_memory.py --rounds 5 --idle 10
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

from _common import Row, Subprocess, child_env, console_script, load_average, log, markdown

PY = sys.executable
TASKS = "def noop():\n    return 1\n"
HUEY_APP = ("from huey import SqliteHuey\n"
            "huey = SqliteHuey('bench', filename={db!r})\n\n"
            "@huey.task()\ndef noop():\n    return 1\n")
# Huey's storage and consumer import these when they are installed (the test extra brings
# psycopg): "bare" blocks them, as a plain `pip install huey` would have none of them.
HUEY_OPTIONAL = ("psycopg", "psycopg2", "redis", "gevent", "cysqlite")
HUEY_BARE = ("import sys\n"
             f"for m in {HUEY_OPTIONAL!r}:\n    sys.modules[m] = None  # ImportError\n"
             "sys.argv[0] = 'huey_consumer'\n"
             "from huey.bin.huey_consumer import consumer_main\nsys.exit(consumer_main())\n")
MODULES = ("typer", "rich", "textual", "prometheus_client", "watchfiles", "asyncio", "psycopg")


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in kB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def script(name: str) -> list[str]:
    """A console script beside this interpreter, run by it; the bench ends without it."""
    return console_script(name) or sys.exit(f"{name} is not installed beside {PY}: "
                                            "pip install -e '.[bench]'")


def settle(proc: Subprocess, ready: str, idle: float) -> dict[str, int]:
    """Wait for the `ready` line in its log, idle, then read its memory."""
    deadline = time.monotonic() + 30
    while ready not in proc.errors():
        if not proc.alive() or time.monotonic() > deadline:
            sys.exit(f"did not start: {proc.errors()[-2000:]}")
        time.sleep(0.05)
    time.sleep(idle)
    return status(proc.pid)


def jobrun_once(tmp: str, idle: float) -> dict[str, int]:
    os.makedirs(tmp)
    with open(os.path.join(tmp, "benchtasks.py"), "w") as f:
        f.write("import jobrun\n\napp = jobrun.App()\n\n\n@app.task\n" + TASKS)
    cfg = os.path.join(tmp, "jobrun.toml")
    with open(cfg, "w") as f:
        f.write('[jobrun]\nstore = "jobs.db"\nimport = ["benchtasks"]\n')
    proc = Subprocess([*script("jobrun"), "start", "--config", cfg], os.path.join(tmp, "log"),
                      stop_wait=30, cwd=tmp, env=child_env())
    try:
        return settle(proc, "serving", idle)
    finally:
        proc.stop()


def huey_once(tmp: str, idle: float, bare: bool) -> dict[str, int]:
    os.makedirs(tmp)
    with open(os.path.join(tmp, "hueyapp.py"), "w") as f:
        f.write(HUEY_APP.format(db=os.path.join(tmp, "huey.db")))
    env = child_env(PYTHONPATH=tmp)
    argv = [PY, "-c", HUEY_BARE] if bare else script("huey_consumer")
    proc = Subprocess([*argv, "hueyapp.huey"], os.path.join(tmp, "log"), stop_wait=30, cwd=tmp,
                      env=env)
    try:
        return settle(proc, "Huey consumer started", idle)
    finally:
        proc.stop()


def loaded_by_service(tmp: str) -> list[str]:
    """The heavy stacks an idle service has in sys.modules (there should be none)."""
    code = ("import sys, threading, os, signal, time\n"
            "def look():\n"
            "    time.sleep(2)\n"
            f"    print(sorted(m for m in {MODULES!r} if m in sys.modules), file=sys.stderr)\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "threading.Thread(target=look, daemon=True).start()\n"
            f"sys.argv = ['jobrun', 'start', '--store', {os.path.join(tmp, 'x.db')!r}]\n"
            "from jobrun.cli import main\nmain()\n")
    err = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60).stderr
    return [line for line in err.splitlines() if line.startswith("[")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--idle", type=float, default=3.0, help="seconds idle before reading")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="jobrun-bench-memory-")
    try:
        log(f"{PY}; {a.rounds} rounds, {a.idle:g} s idle; load average {load_average()}")
        got: dict[str, list[dict[str, int]]] = {"jobrun": [], "huey": [], "huey+": []}
        for i in range(a.rounds):
            got["jobrun"].append(jobrun_once(os.path.join(tmp, f"j{i}"), a.idle))
            got["huey"].append(huey_once(os.path.join(tmp, f"h{i}"), a.idle, bare=True))
            got["huey+"].append(huey_once(os.path.join(tmp, f"i{i}"), a.idle, bare=False))
            log(f"round {i + 1}: " + "  ".join(f"{k} {v[-1]}" for k, v in got.items()))
        med = {k: {m: statistics.median(r[m] for r in v) / 1024 for m in ("VmRSS", "VmHWM")}
               for k, v in got.items()}
        log(f"an idle service's sys.modules holds, of {', '.join(MODULES)}: "
            f"{loaded_by_service(tmp)}")
        log(f"load average at the end: {load_average()}\n")
        rss = Row("VmRSS of an idle service (MB), Huey bare", med["jobrun"]["VmRSS"],
                  med["huey"]["VmRSS"], "MB", "<= Huey",
                  med["jobrun"]["VmRSS"] <= med["huey"]["VmRSS"])
        hwm = Row("VmHWM, its peak so far (MB)", med["jobrun"]["VmHWM"], med["huey"]["VmHWM"],
                  "MB")
        plus = Row("the same, Huey with the optional libraries it finds installed (MB)",
                   med["jobrun"]["VmRSS"], med["huey+"]["VmRSS"], "MB")
        log(markdown([rss, hwm, plus], "huey_consumer"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
