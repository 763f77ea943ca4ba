"""Start-up and memory: what `import jobrun`, a producer, `jobrun ls` and an idle service load.

Each check runs in a real subprocess and reads its `sys.modules`: the CLI stacks (typer,
click, rich), the console (textual), metrics, the old config watcher (watchfiles), tracing
and the PostgreSQL driver must stay out of them. The fast `ls` must print what typer's does.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from conftest import JOBRUN, ROOT, run_cli
from support.config import write_config
from support.wait import wait_for

HEAVY = ("typer", "click", "rich", "textual", "prometheus_client", "watchfiles", "anyio",
         "opentelemetry", "psycopg", "psycopg_pool")
# modules that report, at exit, which of HEAVY (and asyncio) the process loaded
SPY = ("import atexit, json, os, sys\n"
       "def _report():\n"
       f"    loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY + ('asyncio', 'mmap')!r}))\n"
       "    with open(os.environ['SPY_OUT'], 'w') as f:\n"
       "        json.dump(loaded, f)\n"
       "atexit.register(_report)\n")


def loaded(code: str, tmp_path: Path, *args: str, cwd: str | None = None) -> list[str]:
    out = tmp_path / "spy.json"
    env = dict(os.environ, SPY_OUT=str(out), PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", SPY + code, *args], capture_output=True,
                       text=True, env=env, cwd=cwd, timeout=60)
    assert out.exists(), f"the process did not finish: rc {r.returncode} {r.stderr}"
    return list(json.loads(out.read_text()))


def test_import_jobrun_and_enqueue_load_no_cli_or_dashboard(tmp_path: Path) -> None:
    code = ("import jobrun\n"
            f"app = jobrun.App({str(tmp_path / 'jobs.db')!r})\n"
            "@app.task\ndef hello(name): return name\n"
            "job = hello.enqueue('x')\n"
            "app.enqueue_many([hello.call(str(i)) for i in range(3)])\n"
            "assert job.refresh().state.value == 'queued'\n"
            "assert jobrun.once is not None and callable(jobrun.context)\n")
    assert loaded(code, tmp_path) == []


def test_the_public_names_are_the_documented_ones() -> None:
    import jobrun

    assert sorted(jobrun.__all__) == sorted(jobrun._HOME)
    for name in jobrun.__all__:
        assert not isinstance(getattr(jobrun, name), type(jobrun)), name  # never a module
    with pytest.raises(AttributeError):
        _ = jobrun.NoSuchThing  # type: ignore[attr-defined]


def test_plain_ls_loads_no_typer_or_rich(tmp_path: Path) -> None:
    db = str(tmp_path / "jobs.db")
    assert run_cli("enqueue", "t:x", "--store", db, "--allow-unknown").returncode == 0
    code = "import sys\nsys.argv[0] = 'jobrun'\nfrom jobrun.cli import main\nmain()\n"
    assert loaded(code, tmp_path, "ls", "--store", db) == []
    # --help is typer's: it loads it, and says the same as before
    assert "typer" in loaded(code, tmp_path, "ls", "--help")


def test_an_idle_service_loads_no_cli_or_dashboard(tmp_path: Path) -> None:
    (tmp_path / "leantasks.py").write_text(
        "import jobrun\napp = jobrun.App()\n\n@app.task\ndef noop():\n    return 1\n")
    cfg = write_config(tmp_path, imports=["leantasks"])
    out, log = tmp_path / "spy.json", tmp_path / "service.log"
    env = dict(os.environ, SPY_OUT=str(out), PYTHONPATH=str(ROOT))
    # the service ends by os._exit (atexit does not run): a thread reports once it is idle
    code = SPY + (
        "import sys, threading, signal, os\n"
        "def stop():\n"
        "    import time\n"
        f"    log = {str(log)!r}\n"
        "    while 'serving' not in open(log).read(): time.sleep(0.05)\n"
        "    time.sleep(1.0)  # idle: rounds, maintenance, the watcher have all run\n"
        "    _report()\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "threading.Thread(target=stop, daemon=True).start()\n"
        "sys.argv[0] = 'jobrun'\nfrom jobrun.cli import main\nmain()\n")
    with open(log, "w") as f:
        p = subprocess.Popen([sys.executable, "-c", code, "start", "--config", cfg],
                             stderr=f, env=env, cwd=str(tmp_path))
    try:
        wait_for(out.exists, 30, "the service's modules")
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
    assert json.loads(out.read_text()) == []


# -- the fast ls prints what typer's ls prints ------------------------------------------------
TYPER = [sys.executable, "-c", "import sys\nsys.argv[0] = 'jobrun'\n"
         "from jobrun.cli import jobs, service\nfrom jobrun.cli.base import main\nmain()\n"]


@pytest.mark.parametrize("columns", ["80", "50", "200"])
def test_fast_ls_says_what_typer_ls_says(tmp_path: Path, columns: str) -> None:
    db = str(tmp_path / "jobs.db")
    for task in ("t:x", "a.much.longer.module.name:with_a_long_function_name", "t:[b]old",
                 "t:smile:"):
        assert run_cli("enqueue", task, "--store", db, "--allow-unknown").returncode == 0
    env = dict(os.environ, COLUMNS=columns, PYTHONPATH=str(ROOT))
    env.pop("FORCE_COLOR", None)
    lines = [["ls"], ["ls", "--limit", "2"], ["ls", "--limit=1", "--json"],
             ["ls", "--state", "queued"], ["ls", "--state", "bogus"], ["ls", "--limit", "0"],
             ["ls", "--queue", "nope"], ["ls", "--help"], ["ls", "--debug", "--state", "dead"],
             ["ls", "--store", str(tmp_path / "missing.db")], ["ls", "extra"]]
    for args in lines:
        with_store = args if any(a.startswith("--store") for a in args) else [*args, "--store", db]
        fast = subprocess.run([*JOBRUN, *with_store], capture_output=True, text=True, env=env)
        slow = subprocess.run([*TYPER, *with_store], capture_output=True, text=True, env=env)
        assert (fast.returncode, fast.stdout, fast.stderr) == \
            (slow.returncode, slow.stdout, slow.stderr), args


def test_plain_table_is_rich_table_or_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from jobrun import clock
    from jobrun.cli.plain import jobs_lines
    from jobrun.cli.views import jobs_table
    from jobrun.model import JobRecord, JobState

    def record(i: int, task: str, queue: str = "default") -> JobRecord:
        return JobRecord(id=i, task=task, queue=queue, state=list(JobState)[i % 7],
                         args=[], kwargs={}, priority=i - 3, attempts=i % 3, max_attempts=5,
                         run_at=clock.now(), enqueued_at=clock.now())

    sets = [[], [record(1, "m:f")], [record(i, f"m{i}:f" * (i % 4 + 1)) for i in range(1, 30)],
            [record(2, "m:" + "x" * 70)], [record(3, "m:[red]x[/red]")], [record(4, "m:é")],
            [record(5, "m:f", queue="q" * 40)]]
    for width in (40, 80, 120):
        monkeypatch.setenv("COLUMNS", str(width))
        for records in sets:
            lines = jobs_lines(records)
            buf = io.StringIO()
            Console(file=buf, width=width).print(jobs_table(records))
            if lines is not None:
                assert "\n".join(lines) + "\n" == buf.getvalue(), (width, records)
        if width >= 80:
            assert jobs_lines(sets[1]) is not None  # the common case is taken
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert jobs_lines(sets[1]) is None  # rich would colour it: rich draws it
