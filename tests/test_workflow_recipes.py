"""The workflow recipes, run as a user would (the recipe folder copied, its module imported
with $JOBRUN_CONFIG set, a real service in this process): recipes/onboarding (sleep and an
event), recipes/report (gather on a process queue), recipes/resumable/workflow.py (the
resumable import rewritten as a workflow)."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

import jobrun
import jobrun.testing
from conftest import ROOT


def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recipe: str, module: str
         ) -> Any:
    """Deploy recipes/RECIPE into tmp_path and import its module with $JOBRUN_CONFIG set."""
    folder = tmp_path / recipe
    shutil.copytree(ROOT / "recipes" / recipe, folder,
                    ignore=shutil.ignore_patterns("*.db*", "__pycache__", "outbox.txt"))
    monkeypatch.setenv("JOBRUN_CONFIG", str(folder / "jobrun.toml"))
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop(module, None)
    return importlib.import_module(module)


def test_onboarding_sleeps_then_waits_for_verification(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ob = load(tmp_path, monkeypatch, "onboarding", "onboarding")
    try:
        monkeypatch.setattr(ob, "WELCOME_DELAY", 0.3)
        monkeypatch.setattr(ob, "VERIFY_WITHIN", 1.0)
        ob.app.send_event("verified:1", {"via": "link"})  # verified early: taken after the sleep
        first = ob.onboard.options(key="user-1").enqueue(1)
        assert ob.onboard.options(key="user-1").enqueue(1).id == first.id  # once per user
        never = ob.onboard.enqueue(2)
        assert jobrun.testing.run_until_idle(ob.app, timeout=30) == {"succeeded": 2}
        assert first.result(timeout=1) == {"user": 1, "verified": True, "score": 100}
        assert never.result(timeout=1) == {"user": 2, "verified": False}
        mails = sorted((tmp_path / "onboarding" / "outbox.txt").read_text().splitlines())
        assert mails == ["reminder 2", "welcome 1", "welcome 2"]
    finally:
        sys.modules.pop("onboarding", None)
        ob.app.close()


def test_report_fans_out_to_process_children_and_merges(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rp = load(tmp_path, monkeypatch, "report", "report")
    try:
        full = rp.monthly_report.enqueue("2026-11", ["eu", "us", "apac"])
        partial = rp.monthly_report.enqueue("2026-11", ["eu", "atlantis"])
        assert jobrun.testing.run_until_idle(rp.app, timeout=60)["succeeded"] == 2 + 4
        out = full.result(timeout=1)
        assert out["regions"] == ["eu", "us", "apac"] and out["orders"] > 0
        bad = partial.result(timeout=1)
        assert bad["partial"] is True and "no data for atlantis" in bad["error"]
    finally:
        sys.modules.pop("report", None)
        rp.app.close()


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
