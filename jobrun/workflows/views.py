"""How a workflow's records are shown: `show` (steps and children), `explain` (what it waits
for). Pure functions of what the store returned."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from .. import clock
from ..store.contract import StepRecord
from .run import FOREVER


def _duration(s: StepRecord) -> float | None:
    if s.started is None or s.finished is None:
        return None
    return round(max(0.0, s.finished - s.started), 6)


#: `show` lists a long workflow's first and last steps only (`--json` lists every one).
SHOW_HEAD = 10
SHOW_TAIL = 10


def shown_state(s: StepRecord, ended: bool) -> str:
    """A step's state as shown: a workflow that ended (dead, cancelled) waits for nothing
    any more, though its record keeps the wait (a retry of the workflow takes it up again)."""
    return "abandoned" if ended and s.state in ("waiting", "retrying") else s.state


def step_json(s: StepRecord, ended: bool = False) -> dict[str, Any]:
    state = shown_state(s, ended)
    d: dict[str, Any] = {"seq": s.seq, "name": s.name, "kind": s.kind, "state": state,
                         "attempts": s.attempts, "started": clock.iso(s.started),
                         "finished": clock.iso(s.finished), "duration": _duration(s),
                         "error": s.error}
    if s.waits is not None:
        d["event"] = s.waits
    if s.until is not None and state in ("waiting", "retrying"):
        d["until"] = None if s.until >= FOREVER else clock.iso(s.until)
    return d


def steps_table(steps: list[StepRecord], children: list[int], ended: bool = False) -> Table:
    """The steps as rows: a long workflow's first SHOW_HEAD and last SHOW_TAIL, with a row
    counting those between (as children are cut), so a 20,000-step flow prints at once."""
    t = Table(title=f"steps ({len(steps)}), children ({len(children)})", title_justify="left")
    for col in ("#", "step", "state", "attempts", "duration", "error"):
        t.add_column(col)
    cut = len(steps) > SHOW_HEAD + SHOW_TAIL
    for i, s in enumerate(steps[:SHOW_HEAD] + steps[-SHOW_TAIL:] if cut else steps):
        if cut and i == SHOW_HEAD:
            t.add_row("...", f"{len(steps) - SHOW_HEAD - SHOW_TAIL} more steps "
                      "(show --json lists every one)", "", "", "", "")
        d = _duration(s)
        e = s.error or {}
        t.add_row(str(s.seq), s.name + (f" {s.waits}" if s.waits else ""),
                  shown_state(s, ended), str(s.attempts), "" if d is None else f"{d:.3f}s",
                  f"{e.get('type')}: {e.get('message')}"[:80] if e else "")
    if children:
        shown = ", ".join(str(c) for c in children[:20])
        t.caption = f"children: {shown}" + (" ..." if len(children) > 20 else "")
    return t


def _until(until: float | None, now: float) -> str:
    if until is None or until >= FOREVER:
        return "with no timeout"
    return f"until {clock.iso(until)} (in {max(0.0, until - now):.1f}s)"


def wait_reason(job_id: int, step: StepRecord, open_children: int, now: float) -> str:
    """One sentence: what a suspended workflow waits for."""
    if step.kind == "sleep":
        return f"job {job_id} is a workflow sleeping {_until(step.until, now)}"
    if step.kind == "event":
        return f"job {job_id} is a workflow waiting for event {step.waits} {_until(step.until, now)}"
    if step.kind == "gather":
        total = len(json.loads(step.result or "[]"))
        return f"job {job_id} is a workflow waiting for {open_children} of {total} children"
    e = step.error or {}
    return (f"job {job_id} is a workflow waiting to retry step {step.name} (attempt "
            f"{step.attempts} failed: {e.get('type')}: {e.get('message')}) "
            f"{_until(step.until, now)}")
