"""A long job in five steps that resumes where it stopped when it is retried.

`import_dataset(dataset, workdir)` runs fetch → parse → transform → index → publish. Each
step is a `jobrun.once(f"import:{dataset}:{step}")` block: the step's own bookkeeping (its
row in `import_progress`) commits with the once-record when the step ends. A retry (after
an exception, a crash of the worker, or an operator's `jobrun retry`) skips the steps
already recorded and starts at the first one that is not. Steps pass their results on
through files in `workdir`, so a resumed step finds its input on disk.

Keyed by dataset, not by job id: a new job for the same dataset resumes too. To run a
dataset again from scratch, call `reset(dataset)`.

Each step also appends "<step> attempt <n>" to `workdir/journal.log`, to show what ran.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import apsw

import jobrun
from jobrun.once import forget

app = jobrun.App()

PROGRESS = """
CREATE TABLE IF NOT EXISTS import_progress (
    dataset  TEXT NOT NULL,
    step     TEXT NOT NULL,
    job_id   INTEGER,
    attempt  INTEGER,
    done_at  REAL NOT NULL,
    PRIMARY KEY (dataset, step)
)"""


def _write(path: str, data: object) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)  # a crash mid-write leaves the old file or the new one


def _read(path: str) -> object:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# -- the steps: each reads the previous step's file and writes its own ----------------------
def fetch(dataset: str, workdir: str) -> None:
    """Download the raw data (here: made up)."""
    _write(os.path.join(workdir, "raw.json"),
           [f"{dataset},{i},{i * 7 % 100}" for i in range(1000)])


def parse(dataset: str, workdir: str) -> None:
    raw = _read(os.path.join(workdir, "raw.json"))
    assert isinstance(raw, list)
    rows = [{"id": int(i), "value": int(v)} for _, i, v in (line.split(",") for line in raw)]
    _write(os.path.join(workdir, "rows.json"), rows)


def transform(dataset: str, workdir: str) -> None:
    rows = _read(os.path.join(workdir, "rows.json"))
    assert isinstance(rows, list)
    _write(os.path.join(workdir, "totals.json"),
           {"count": len(rows), "sum": sum(r["value"] for r in rows)})


def index(dataset: str, workdir: str) -> None:
    totals = _read(os.path.join(workdir, "totals.json"))
    _write(os.path.join(workdir, "index.json"), {"dataset": dataset, "totals": totals})


def publish(dataset: str, workdir: str) -> None:
    os.replace(os.path.join(workdir, "index.json"),
               os.path.join(workdir, f"{dataset}.published.json"))


STEP_NAMES = ("fetch", "parse", "transform", "index", "publish")
#: The step functions by name (a test may replace one to make it fail).
STEPS: dict[str, Callable[[str, str], None]] = {
    "fetch": fetch, "parse": parse, "transform": transform, "index": index, "publish": publish,
}


@app.task(queue="imports", max_attempts=5, timeout=3600)
def import_dataset(dataset: str, workdir: str) -> dict[str, list[str]]:
    """Run the steps not done yet; returns which ran now and which an earlier run did."""
    ctx = jobrun.context()
    os.makedirs(workdir, exist_ok=True)
    ran, skipped = [], []
    for step in STEP_NAMES:
        with jobrun.once(f"import:{dataset}:{step}") as op:
            if op.done:
                skipped.append(step)
                continue
            with open(os.path.join(workdir, "journal.log"), "a", encoding="utf-8") as j:
                j.write(f"{step} attempt {ctx.attempt}\n")
            STEPS[step](dataset, workdir)
            db = op.connection  # the progress row commits with the once-record
            db.execute(PROGRESS)
            db.execute("INSERT OR REPLACE INTO import_progress VALUES (?, ?, ?, ?, ?)",
                       (dataset, step, ctx.job_id, ctx.attempt, time.time()))
        ran.append(step)
        ctx.heartbeat()  # a long job: keep its lease
    return {"ran": ran, "skipped": skipped}


def progress(dataset: str) -> list[tuple[str, int, int]]:
    """(step, job id, attempt) of each step done, in order."""
    conn = apsw.Connection(app.store_path)
    try:
        conn.execute(PROGRESS)
        rows = conn.execute("SELECT step, job_id, attempt FROM import_progress "
                            "WHERE dataset = ? ORDER BY done_at", (dataset,)).fetchall()
    finally:
        conn.close()
    return [(str(s), int(j), int(a)) for s, j, a in rows]


def reset(dataset: str) -> None:
    """Forget a dataset's progress, so its next import starts at the first step."""
    for step in STEP_NAMES:
        forget(f"import:{dataset}:{step}", store=app.store_path)
    conn = apsw.Connection(app.store_path)
    try:
        conn.execute(PROGRESS)
        conn.execute("DELETE FROM import_progress WHERE dataset = ?", (dataset,))
    finally:
        conn.close()
