"""A task module that imports in the service but fails in a process child (a file missing
there, a deploy half done): its jobs fail with ImportFailed, which says why, and are
retried; they do not go dead at once as tasks no service runs (UnknownTask)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import jobrun
from conftest import wait_for

TASKS = textwrap.dedent('''
    import multiprocessing
    import jobrun

    if multiprocessing.current_process().name == "jobrun-child":
        raise ImportError("settings.ini not found (only in the worker process)")

    app = jobrun.App()

    @app.task(queue="pq", max_attempts=3, retry_base=0.05, retry_cap=0.05)
    def work():
        return 1
''')


def test_a_task_module_failing_only_in_the_child_is_retried_saying_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = f"childfail_{tmp_path.name}"
    (tmp_path / f"{mod}.py").write_text(TASKS)
    cfg = tmp_path / "jobrun.toml"
    cfg.write_text(f'[jobrun]\nstore = "jobs.db"\nimport = ["{mod}"]\nshutdown_timeout = 2\n'
                   '[queues.pq]\nexecutor = "process"\nconcurrency = 1\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__(mod)
    app = jobrun.App.from_config(str(cfg))
    job = app.enqueue(f"{mod}:work")
    app.start()
    try:
        wait_for(lambda: job.refresh().state.value == "dead", 30, "the job to use its attempts")
    finally:
        app.stop()
        app.close()
    r = job.refresh().record
    assert r.attempts == 3 and [e["type"] for e in r.errors] == ["ImportFailed"] * 3, r.errors
    assert "settings.ini not found" in r.errors[0]["message"]
