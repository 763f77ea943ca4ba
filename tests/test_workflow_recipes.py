"""recipes/resumable/workflow.py, the resumable import rewritten as a durable workflow, run
as a user would: the recipe folder copied, its module imported with $JOBRUN_CONFIG set."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path

import pytest
from conftest import ROOT

import jobrun
import jobrun.testing


def test_resumable_workflow_retries_only_the_failing_step(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "resumable"
    shutil.copytree(ROOT / "recipes" / "resumable", folder,
                    ignore=shutil.ignore_patterns("*.db*", "__pycache__"))
    monkeypatch.setenv("JOBRUN_CONFIG", str(folder / "jobrun.toml"))
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("workflow", None)
    wf = importlib.import_module("workflow")
    try:
        real = wf.transform.fn
        calls: list[int] = []

        def transform(rows: list[dict[str, int]], workdir: str) -> dict[str, int]:
            calls.append(1)
            if len(calls) == 1:
                raise OSError("disk full")  # step 3 of 5 fails once
            return real(rows, workdir)

        monkeypatch.setattr(wf.transform, "fn", transform)
        workdir = tmp_path / "work"
        job = wf.import_dataset.options(key="sales").enqueue("sales", str(workdir))
        assert jobrun.testing.run_until_idle(wf.app, timeout=30) == {"succeeded": 1}
        path = job.result(timeout=1)
        assert json.loads(Path(path).read_text())["totals"]["count"] == 1000
        # fetch and parse ran once; transform twice (its retry); the body was replayed.
        journal = (workdir / "journal.log").read_text().splitlines()
        assert journal == ["fetch", "parse", "transform", "index", "publish"]
        assert len(calls) == 2
        steps = wf.app.store.steps(job.id)
        assert [(s.name, s.attempts) for s in steps] == [
            ("fetch", 1), ("parse", 1), ("transform", 2), ("index", 1), ("publish", 1)]
        assert job.refresh().attempts == 1  # a step's retry is not the workflow's attempt
    finally:
        sys.modules.pop("workflow", None)
        wf.app.close()
