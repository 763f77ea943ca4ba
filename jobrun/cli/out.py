"""What the `jobrun` commands share that needs no typer: exit codes, output, errors, the store.

`jobrun ls` and `jobrun start` run through here without importing typer or rich (`fast.py`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from .. import clock
from ..errors import ConfigError, JobrunError, StoreError
from ..model import JobRecord

if TYPE_CHECKING:
    from ..app import App
    from ..config import Settings
    from ..store.contract import Store

EX_OK, EX_REFUSED, EX_USAGE, EX_CONFIG = 0, 1, 2, 78
EX_PIPE = 128 + 13  # what a shell reports for a tool ended by SIGPIPE (`jobrun ls | head`)
DEBUG = {"on": False}


def echo(message: str, err: bool = False) -> None:
    """typer.echo for plain strings, without importing typer."""
    stream = sys.stderr if err else sys.stdout
    stream.write(message + "\n")
    stream.flush()


def fail(message: str, code: int = EX_REFUSED) -> NoReturn:
    echo(f"jobrun: {message}", err=True)
    raise SystemExit(code)


def warn(message: str | None) -> None:
    if message:
        echo(f"jobrun: {_one_line(message)}", err=True)


def _open(config: str | None, store: str | None, *, import_tasks: bool = False) -> App:
    """An App on the resolved store (created if missing: `start` and `enqueue` only); config
    errors exit 78. With `import_tasks`, the config's task modules are imported so enqueue
    knows each task's queue and options."""
    from ..app import App
    from ..runtime import import_tasks as do_import
    from ..runtime import resolve

    rt = resolve(config, store)
    if import_tasks:
        do_import(rt.settings)
    return App(rt.store, settings=rt.settings)


@dataclass
class Opened:
    """What an operator command works on: an existing store, and the settings (maybe none)."""

    store: Store
    settings: Settings

    def ring(self) -> None:
        """Wake the live services at once (a retry, a resume) instead of at their next poll."""
        from ..presence import presence_for

        presence_for(self.store).wake_all()


def open_store(config: str | None, store: str | None, *, import_tasks: bool = False,
               readonly: bool = False) -> Opened:
    """The store of an operator command: never created (a typo in `--store` must not make an
    empty store), and with a store given, a broken config is one warning, not an exit 78.
    `readonly` for commands that only read: they work in a folder this user cannot write."""
    from ..location import exists, foreign, writable_beside
    from ..presence.upgrade import held_back, may_be_served
    from ..runtime import import_tasks as do_import
    from ..runtime import resolve
    from ..store import open_store as open_any

    rt = resolve(config, store, lenient=True)
    warn(rt.warning)
    if foreign(rt.store):
        fail(f"store {rt.store!r}: {foreign(rt.store)}")
    if import_tasks:
        try:
            do_import(rt.settings)
        except ConfigError as exc:
            if not (store or os.environ.get("JOBRUN_STORE")):
                raise
            warn(f"warning: config ignored (the store is given): {exc}")
    if not exists(rt.store):
        fail(f"store {rt.store} does not exist (a typo in --store or $JOBRUN_STORE? "
             "`jobrun start` and `jobrun enqueue` create it)")
    # Looked at first without migrating (a database without a jobrun schema is refused,
    # not set up): an older service serving an older schema keeps it (presence/upgrade.py).
    held = None
    if may_be_served(rt.store):
        reader = open_any(rt.store, readonly=True)
        try:
            held = held_back(reader) if reader.schema()[0] else None
        finally:
            reader.close()
    if held and not readonly:
        fail(held)
    # Read-only only where it must be (a store held back, a folder this user cannot write):
    # a read-only SQLite connection leaves -wal/-shm beside a file it then refuses.
    readonly = readonly and (bool(held) or not writable_beside(rt.store))
    return Opened(open_any(rt.store, durability=rt.settings.durability, create=False,
                           readonly=readonly), rt.settings)


def job_json(r: JobRecord, full: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": r.id, "task": r.task, "queue": r.queue, "state": r.state.value,
        "attempts": r.attempts, "max_attempts": r.max_attempts, "priority": r.priority,
        "key": r.key, "run_at": clock.iso(r.run_at), "enqueued_at": clock.iso(r.enqueued_at),
        "started_at": clock.iso(r.started_at), "finished_at": clock.iso(r.finished_at),
        "holder": r.holder, "trace_id": r.trace_id,
        "held": r.held,  # running, claimed ahead of a free worker: not started, not counted
    }
    if full:
        d.update(args=r.args, kwargs=r.kwargs, result=r.result, timeout=r.timeout,
                 errors=[{**e, "at": clock.iso(e.get("at"))} for e in r.errors])
    return d


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def say(as_json: bool, value: Any, text: str) -> None:
    """The one output of a command: `value` as JSON with --json, else the sentence."""
    if as_json:
        _print_json(value)
    else:
        echo(text)


_HELD: list[int] = []


def hold_signals() -> None:
    """For `jobrun start`, from the first line of the command: a SIGTERM, SIGINT or SIGHUP
    that comes while it imports is kept for the service's own handlers (`held_signals`), so
    a stop while starting still drains and exits 0 instead of dying with 143."""
    import signal

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, lambda signum, _frame: _HELD.append(signum))


def held_signals() -> list[int]:
    """The signals `hold_signals` kept, once each, in the order they came."""
    out = list(dict.fromkeys(_HELD))
    _HELD.clear()
    return out


def argv() -> list[str]:
    """The arguments with every `--debug` taken out (before a `--`): it works anywhere."""
    args = sys.argv[1:]
    end = args.index("--") if "--" in args else len(args)
    if "--debug" in args[:end]:
        DEBUG["on"] = True
        args = [a for a in args[:end] if a != "--debug"] + args[end:]
    return args


def guarded(command: Callable[[], None]) -> NoReturn:
    """Run a whole command: its errors become one line and an exit code (78 for config);
    output whose reader went away (`| head -1`) ends it quietly, as it does other tools."""
    try:
        command()
        sys.stdout.flush()  # here, where a closed pipe is caught, not at the interpreter's exit
    except BrokenPipeError:
        _reader_gone()
    except SystemExit as exc:
        if isinstance(exc.__context__, BrokenPipeError):
            _reader_gone()  # rich's own answer to it (Console.on_broken_pipe): exit 1
        raise
    except ConfigError as exc:
        _report(exc, EX_CONFIG)
    except (StoreError, JobrunError) as exc:  # InvalidJob included: a refused payload
        _report(exc, EX_REFUSED)
    except Exception as exc:
        _report(exc, EX_REFUSED, bug=True)
    sys.exit(EX_OK)


def _reader_gone() -> NoReturn:
    """stdout's reader closed it: nothing more to say to anyone. stdout is pointed at
    /dev/null so the interpreter's last flush of what is still buffered does not fail."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(EX_PIPE)


def _report(exc: BaseException, code: int, *, bug: bool = False) -> NoReturn:
    """One line; a `bug` (an error jobrun did not mean to raise) says it is one."""
    if DEBUG["on"]:
        import traceback

        traceback.print_exception(exc)
    elif bug:
        echo(f"jobrun: internal error: {type(exc).__name__}: "
                   f"{_one_line(str(exc))} (--debug shows the traceback; please report it)",
                   err=True)
    else:
        echo(f"jobrun: {_one_line(str(exc) or type(exc).__name__)}", err=True)
    sys.exit(code)


def _one_line(text: str) -> str:
    """An error is one line on stderr, whatever the message held (SQLite's own can wrap)."""
    return " ".join(text.split())

