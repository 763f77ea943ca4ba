"""The resumable import as a durable workflow: fetch → parse → transform → index → publish.

Each step is an `@app.step`: its JSON result is recorded in the store when it returns, and
the workflow's body, run again after a crash, a retry or a deploy, gets the recorded results
back without running those steps again. A failing step is retried (3 attempts, with backoff)
before the body sees it. Steps hand their results on as return values, so there are no
progress tables and no intermediate files: only `publish` writes one.

    job = import_dataset.options(key="sales").enqueue("sales", "/srv/work")  # once per dataset

Each step appends "<step>" to `workdir/journal.log`, to show what ran.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jobrun

app = jobrun.App()


def _journal(workdir: str, step: str) -> None:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "journal.log"), "a", encoding="utf-8") as j:
        j.write(f"{step}\n")


@app.step(max_attempts=3)
def fetch(dataset: str, workdir: str) -> list[str]:
    """Download the raw data (here: made up)."""
    _journal(workdir, "fetch")
    return [f"{dataset},{i},{i * 7 % 100}" for i in range(1000)]


@app.step(max_attempts=3)
def parse(raw: list[str], workdir: str) -> list[dict[str, int]]:
    _journal(workdir, "parse")
    return [{"id": int(i), "value": int(v)} for _, i, v in (line.split(",") for line in raw)]


@app.step(max_attempts=3)
def transform(rows: list[dict[str, int]], workdir: str) -> dict[str, int]:
    _journal(workdir, "transform")
    return {"count": len(rows), "sum": sum(r["value"] for r in rows)}


@app.step(max_attempts=3)
def index(dataset: str, totals: dict[str, int], workdir: str) -> dict[str, Any]:
    _journal(workdir, "index")
    return {"dataset": dataset, "totals": totals}


@app.step(max_attempts=3)
def publish(doc: dict[str, Any], workdir: str) -> str:
    _journal(workdir, "publish")
    path = os.path.join(workdir, f"{doc['dataset']}.published.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(doc, f)
    os.replace(path + ".tmp", path)  # a crash mid-write leaves no half file
    return path


@app.workflow(queue="imports", max_attempts=5)
def import_dataset(dataset: str, workdir: str) -> str:
    raw = fetch(dataset, workdir)
    rows = parse(raw, workdir)
    totals = transform(rows, workdir)
    return publish(index(dataset, totals, workdir), workdir)
