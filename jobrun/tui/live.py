"""The `jobrun top` loop: the one place that reads the clock and the keyboard.

Each refresh reads a snapshot on a read-only connection and redraws it at the terminal's
size. Should reading take long (a huge backlog), refreshes space out (down to one per 5 s) so
that a dashboard costs about a tenth of a core at most, however many are open.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from .. import clock
from ..config import Settings
from ..errors import StoreError
from ..store.contract import Store
from .snapshot import take
from .source import open_reader
from .views import dashboard
from .window import Window

BACKOFF = 10.0     # refresh no more often than every BACKOFF times what a read cost
SLOWEST = 5.0      # but at least this often: a dashboard must still move
QUIT_KEYS = (b"q", b"Q")


def _terminal_fd(stream: TextIO) -> int | None:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return fd if os.isatty(fd) else None


@contextlib.contextmanager
def keys(stream: TextIO, quit: threading.Event) -> Iterator[None]:
    """While open, read keys in cbreak mode in a thread (if `stream` is a terminal):
    `q` sets `quit` without waiting for Enter. The terminal mode is restored on the way out."""
    fd = _terminal_fd(stream)
    if fd is None:
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                ch = os.read(fd, 1)
                if not ch or ch in QUIT_KEYS:  # end of input quits too
                    quit.set()
                    return

    tty.setcbreak(fd)
    reader = threading.Thread(target=read, name="jobrun-top-keys", daemon=True)
    reader.start()
    try:
        yield
    finally:
        done.set()
        reader.join(1.0)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    """SIGTERM ends the loop like `q`, so the terminal is restored rather than left raw."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(_signum: int, _frame: Any) -> None:
        stop.set()

    before = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _loop(store: Store, settings: Settings | None, refresh: float,
          console: Console, why: str = "") -> None:
    stop = threading.Event()
    window = Window()
    snap = None
    first = True  # the first read loads the hour's finished counts: not a steady cost
    with _stop_on_sigterm(stop), keys(sys.stdin, stop), \
            Live(console=console, screen=True, auto_refresh=False) as live:
        while not stop.is_set():
            started = clock.monotonic()
            notice = why
            try:
                snap = take(store, now=clock.now(), settings=settings, window=window)
            except StoreError as exc:
                notice = str(exc)  # keep showing the last frame: the store may come back
            cost = clock.monotonic() - started
            if snap is None:
                live.update(Text(f"jobrun top: {notice}", style="bold red"), refresh=True)
            else:
                live.update(dashboard(snap, console.width, console.height, notice),
                            refresh=True)
            period = refresh if first else min(SLOWEST, max(refresh, BACKOFF * cost))
            first = False
            stop.wait(max(0.01, period - cost))


def run(store_path: str, settings: Settings | None, *, once: bool, refresh: float = 0.25,
        console: Console | None = None, why: str = "") -> None:
    """The dashboard until `q` (or Ctrl-C, SIGTERM). With `once`, or when the output is not
    a terminal (a pipe, a file), one frame is printed instead: a live screen needs a screen."""
    console = console or Console()
    store = open_reader(store_path)
    try:
        if once or not console.is_terminal:
            snap = take(store, now=clock.now(), settings=settings)
            console.print(dashboard(snap, console.width, console.height, live=False))
            return
        with contextlib.suppress(KeyboardInterrupt):
            _loop(store, settings, refresh, console, why)
    finally:
        store.close()


def top_command(config: str | None, store: str | None, once: bool, *,
                read_only: bool = False) -> None:
    """`jobrun top [--once] [--read-only]`: config and store resolved as for every other
    command. In a terminal, the console (Textual); with only stdout a terminal, the read-only
    dashboard; otherwise, or with `--once`, one frame."""
    from ..runtime import resolve

    rt = resolve(config, store, lenient=True)  # with a store given, a broken config warns
    if rt.warning:
        sys.stderr.write(f"jobrun: {' '.join(rt.warning.split())}\n")
    # Textual draws on stderr: with stderr sent elsewhere (`2> log`), the rich loop on stdout.
    if not once and all(f.isatty() for f in (sys.stdin, sys.stdout, sys.stderr)):
        from .app import run_console

        open_reader(rt.store).close()  # a missing store: one line, not a screen
        run_console(rt.store, rt.settings, read_only=read_only)
        return
    # Said in the frame: the console's keys are missing for a reason the user can change.
    why = "keys: stderr is not a terminal" if not once and sys.stdin.isatty() \
        and sys.stdout.isatty() and not sys.stderr.isatty() else ""
    run(rt.store, rt.settings, once=once, why=why)
