"""`jobrun ls`'s table as plain lines, the same characters rich draws, without rich.

Only where the two agree by construction: output that is not a terminal (rich would add no
colour), cells of printable ASCII that rich reads as plain text (no markup, no emoji codes),
and a table that fits the width (nothing to wrap). Anything else returns None: rich draws it.
"""

from __future__ import annotations

import os
import sys

from .. import clock
from ..model import JobRecord

HEADERS = ("id", "task", "queue", "state", "att", "pri", "run_at")


def jobs_lines(records: list[JobRecord]) -> list[str] | None:
    """The lines of `views.jobs_table(records)` as rich prints it, or None."""
    if _is_terminal():
        return None
    rows = [(str(r.id), r.task, r.queue, "running (held)" if r.held else r.state.value,
             f"{r.attempts}/{r.max_attempts}",
             str(r.priority), clock.when(r.run_at)) for r in records]
    if not all(_plain(cell) for row in rows for cell in row[1:3]):
        return None
    widths = [max(len(c) for c in col) for col in zip(HEADERS, *rows)]
    if sum(widths) + 2 * (len(widths) - 1) > _width():
        return None
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in [HEADERS, *rows]]


def _plain(cell: str) -> bool:
    """Text rich shows as it is: no markup ([...]) and no :emoji: code (two colons)."""
    return cell.isascii() and cell.isprintable() and "[" not in cell and cell.count(":") < 2


def _is_terminal() -> bool:
    """rich's Console.is_terminal for stdout."""
    compatible = os.environ.get("TTY_COMPATIBLE", "")
    if compatible in ("0", "1"):
        return compatible == "1"
    force = os.environ.get("FORCE_COLOR")
    if force is not None:
        return force != ""
    try:
        return sys.stdout.isatty()
    except ValueError:
        return False


def _width() -> int:
    """rich's Console width: the first std stream that is a terminal, $COLUMNS, else 80."""
    width = 0
    for fd in (0, 1, 2):
        try:
            width = os.get_terminal_size(fd).columns
            break
        except (AttributeError, ValueError, OSError):
            pass
    if os.environ.get("COLUMNS", "").isdigit():
        width = int(os.environ["COLUMNS"])
    if os.environ.get("TERM", "").lower() in ("dumb", "unknown") and _is_terminal():
        width = 80
    return width or 80
