"""The console's terminal: keys handled one after another in the order they came, Escape
then a key read as both, stale row highlights ignored, SIGTERM ending it as `q` does,
NO_COLOR meaning no colour.

Textual types a printable key into an Input at once but runs a binding (backspace, ctrl+u,
enter, escape, `s`) only once the key has bubbled back up to the app, behind the keys that
came after it: keys arriving together (a paste, fast typing over ssh) were applied out of
order (`ab` BSpace `cd` gave `abc`). Here every key of a screen is handled as it comes.

A terminal sends Alt+s as Escape then `s`; Textual reads the two as Alt+s when `s` comes
within ESCDELAY, and checks that delay only when no byte came for 0.1 s, so Escape then a
key pressed at once was one Alt key (the view stayed open, the key did nothing, and Escape
then `/` or `?` lost the Escape). The console binds no Alt key: its parser reads Escape
followed by a key as both, keeping Escape sequences (arrows: ESC [ ...) and Alt+Backspace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import signal
from codecs import getincrementaldecoder
from collections.abc import Callable, Iterable
from typing import Any

from textual import events
from textual._parser import ParseError
from textual._xterm_parser import XTermParser
from textual.app import App
from textual.coordinate import Coordinate
from textual.filter import Monochrome, NoColor
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input
from textual.widgets.data_table import RowKey

try:
    from textual.drivers.linux_driver import LinuxDriver
except ImportError:  # pragma: no cover - Windows: Textual's own driver and parser
    LinuxDriver = None  # type: ignore[assignment,misc]

ESC = "\x1b"
# after Escape, what starts a sequence (CSI, SS3, OSC, DCS, another Escape) or is Alt+Backspace
SEQUENCE = frozenset("[O]P\x1b\x7f\x08")
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"


class Parser(XTermParser):
    """Textual's parser, with Escape followed by a key read as Escape and the key (never
    Alt+key), and the Escape delay honoured before new bytes are read, not after."""

    def __init__(self, debug: bool = False) -> None:
        super().__init__(debug)
        self._escaped = False  # the last byte fed was an Escape: a sequence may follow
        self._recent = ""      # the last bytes fed: where a bracketed paste starts and ends
        self._pasting = False  # inside a paste an Escape is text, as Textual reads it

    def feed(self, data: str) -> Iterable[Message]:
        if not data:
            yield from super().feed(data)
            return
        yield from self.tick()  # an Escape whose delay ran out is a key, whatever follows
        start = 0
        for i, char in enumerate(data):
            self._recent = (self._recent + char)[-len(PASTE_START):]
            if self._recent in (PASTE_START, PASTE_END):
                self._pasting = self._recent == PASTE_START
            if self._escaped and char not in SEQUENCE and not self._pasting:
                if i > start:  # (an empty feed would mean the end of input)
                    yield from super().feed(data[start:i])
                yield from self.lone_escape()
                start = i
            self._escaped = char == ESC
        if start < len(data):
            yield from super().feed(data[start:])

    def lone_escape(self) -> Iterable[Message]:
        """The Escape just fed is a key of its own: end its wait now."""
        if self._timeout_time is not None:
            self._timeout_time = 0.0
        yield from self.tick()


if LinuxDriver is not None:
    class Driver(LinuxDriver):
        """Textual's Linux driver reading keys through `Parser`: its input loop, as is,
        with the parser changed."""

        def run_input_thread(self) -> None:
            selector = selectors.SelectSelector()
            selector.register(self.fileno, selectors.EVENT_READ)
            parser = Parser(self._debug)
            decode = getincrementaldecoder("utf-8")().decode

            def process(ready: list[tuple[selectors.SelectorKey, int]],
                        final: bool = False) -> None:
                for n, (_key, mask) in enumerate(ready):
                    if mask & selectors.EVENT_READ:
                        data = decode(os.read(self.fileno, 4096),
                                      final=final and n == len(ready) - 1)
                        if not data:
                            break  # stdin piped and at its end
                        for event in parser.feed(data):
                            self.process_message(event)
                for event in parser.tick():
                    self.process_message(event)

            try:
                while not self.exit_event.is_set():
                    process(selector.select(0.1))
                selector.unregister(self.fileno)
                process(selector.select(0.1), final=True)
            finally:
                selector.close()
                with contextlib.suppress(EOFError, ParseError):
                    for _ in parser.feed(""):
                        pass


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


def cursor_at(table: DataTable[Any]) -> tuple[int, RowKey] | None:
    """The row the cursor is on now, and its key; None in an empty table. A highlight
    message is handled after it was posted, maybe after a redraw cleared the rows or put the
    cursor elsewhere: it says only that the cursor moved, the table says where to."""
    row = table.cursor_row
    if not 0 <= row < table.row_count:
        return None
    return row, table.coordinate_to_cell_key(Coordinate(row, 0)).row_key


def driver_class(app: App[Any]) -> Any:
    """The driver reading keys through `Parser` where Textual would use its Linux one."""
    default = App.get_driver_class(app)
    return Driver if LinuxDriver is not None and default is LinuxDriver else default
