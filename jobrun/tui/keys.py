"""The console's terminal: keys handled one after another in the order they came, stale
row highlights ignored, SIGTERM ending it as `q` does, NO_COLOR meaning no colour.

Textual types a printable key into an Input at once but runs a binding (backspace, ctrl+u,
enter, escape, `s`) only once the key has bubbled back up to the app, behind the keys that
came after it: keys arriving together (a paste, fast typing over ssh) were applied out of
order (`ab` BSpace `cd` gave `abc`). Here every key of a screen is handled as it comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import Any

from textual import events
from textual.app import App
from textual.coordinate import Coordinate
from textual.filter import Monochrome, NoColor
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input


async def in_order(app: App[Any], box: Input, event: events.Key,
                   submit: Callable[[str], None]) -> bool:
    """Handle `event` now if it is a key of a plain screen; False leaves it to Textual (a
    modal question takes its keys itself, one hop away, in order)."""
    if event.is_forwarded or isinstance(app.screen, ModalScreen):
        return False
    if app.focused is box:
        if event.key == "enter":
            submit(box.value)
            return True
        if event.is_printable and event.character is not None:
            if box.selection.is_empty:
                box.insert_text_at_cursor(event.character)
            else:
                box.replace(event.character, *box.selection)
            return True
    return bool(await app._check_bindings(event.key, priority=True)
                or await app._check_bindings(event.key))


def no_colour(app: App[Any]) -> None:
    """NO_COLOR: no colour codes at all (Textual sends 256-colour greys instead)."""
    if app.no_color:
        app._filters = [f for f in app._filters if not isinstance(f, Monochrome)]
        app._filters.append(NoColor())


def on_sigterm(app: App[Any], then: Callable[[], object] | None) -> None:
    """SIGTERM calls `then` (the app's exit: the terminal is restored, not left raw); None
    removes the handler."""
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop = asyncio.get_running_loop()
        if then is None:
            loop.remove_signal_handler(signal.SIGTERM)
        else:
            loop.add_signal_handler(signal.SIGTERM, then)


def current(table: DataTable[Any], event: DataTable.RowHighlighted) -> bool:
    """Whether a highlight still says where the cursor is: a redraw (clear, rows, cursor
    moved back) posts highlights that are handled after it, for rows that may be gone."""
    if event.cursor_row != table.cursor_row or event.cursor_row >= table.row_count:
        return False
    return table.coordinate_to_cell_key(Coordinate(event.cursor_row, 0)).row_key == event.row_key
