"""`jobrun start`, `check`, `init`, `cron ls`, `pause`/`resume`: the service and its config."""

from __future__ import annotations

import os
from datetime import UTC
from typing import Annotated, Any, Optional

import typer

from .. import clock
from ..config import check as check_config
from ..errors import ConfigError
from .base import (
    EX_CONFIG,
    EX_USAGE,
    ConfigOpt,
    JsonOpt,
    StoreOpt,
    _print_json,
    cli,
    fail,
    open_store,
    say,
)


@cli.command()
def start(config: ConfigOpt = None, store: StoreOpt = None,
          demo: Annotated[bool, typer.Option("--demo", help="Run the demo config on a "
                                             "throwaway store and enqueue demo jobs.")] = False,
          log_format: Annotated[Optional[str], typer.Option(
              "--log-format", help="text or json (default: the config's, else text)")] = None,
          log_level: Annotated[Optional[str], typer.Option(
              "--log-level", help="DEBUG, INFO, WARNING (default: the config's, else INFO)")
          ] = None) -> None:
    """Run the service in the foreground: workers, scheduler, reload. SIGTERM drains."""
    from .foreground import start as run

    run(config, store, demo, log_format, log_level)


ForceOpt = Annotated[bool, typer.Option("--force", help="Even a queue that no config "
                                         "declares and no live service serves.")]


def _known_queue(opened: Any, queue: str, force: bool) -> None:
    """Refuse a queue nobody knows (a typo must not make a queue), naming the close ones."""
    import difflib

    from ..queues import known_queues

    known = known_queues(opened.store, opened.settings)
    if queue in known or force:
        return
    close = difflib.get_close_matches(queue, sorted(known), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    fail(f"no queue {queue!r}: no config declares it, no live service serves it and the store "
         f"has never paused it ({hint}known: {', '.join(sorted(known))}; --force to use it "
         "anyway)")


@cli.command()
def pause(queue: str, force: ForceOpt = False, as_json: JsonOpt = False,
          config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Stop claiming from a queue; its jobs stay queued."""
    opened = open_store(config, store)
    _known_queue(opened, queue, force)
    opened.store.set_paused(queue, True)
    say(as_json, {"queue": queue, "paused": True}, f"queue {queue} paused")


@cli.command()
def resume(queue: str, force: ForceOpt = False, as_json: JsonOpt = False,
           config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Claim from a paused queue again."""
    opened = open_store(config, store)
    _known_queue(opened, queue, force)
    opened.store.set_paused(queue, False)
    opened.ring()
    say(as_json, {"queue": queue, "paused": False}, f"queue {queue} resumed")


# -- cron ------------------------------------------------------------------------------------
cron_cli = typer.Typer(no_args_is_help=True, help="Cron entries of the config.")
cli.add_typer(cron_cli, name="cron")


@cron_cli.command("ls")
def cron_ls(as_json: JsonOpt = False,
            from_: Annotated[Optional[str], typer.Option("--from", help="ISO datetime "
                                                         "(default now; naive means UTC)")] = None,
            count: Annotated[int, typer.Option("--count", min=1, max=1000)] = 3,
            config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Cron entries with their next fire times, in their zone and in UTC."""
    from datetime import datetime

    from ..runtime import resolve
    from ..scheduler import describe

    rt = resolve(config, store)
    if from_:
        try:
            start_at = datetime.fromisoformat(from_.replace("Z", "+00:00"))
        except ValueError:
            fail(f"--from {from_!r} is not an ISO 8601 datetime", EX_USAGE)
        if start_at.tzinfo is None:
            start_at = start_at.replace(tzinfo=UTC)
    else:
        start_at = clock.to_datetime(clock.now())
    entries = [describe(e, start_at, count) for e in rt.settings.cron]
    if as_json:
        _print_json(entries)
        return
    from .views import cron_table, render

    render(cron_table(entries))


# -- config ----------------------------------------------------------------------------------
@cli.command()
def check(as_json: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Validate the config: every problem with its file, line and reason; exit 78 if any."""
    from ..runtime import check_tasks, import_tasks

    path = config or os.environ.get("JOBRUN_CONFIG")
    if not path:
        fail("give --config PATH (or set JOBRUN_CONFIG)", EX_USAGE)
    settings, problems = check_config(path)
    if not problems:
        try:
            import_tasks(settings)
            problems = check_tasks(settings)
        except ConfigError as exc:
            problems = [exc]
    if as_json:
        _print_json({"ok": not problems, "file": path, "problems": [
            {"file": p.file, "line": p.line, "key": p.key, "reason": p.reason,
             "message": str(p)} for p in problems]})
    else:
        for p in problems:
            typer.echo(f"jobrun: {p}", err=True)
    if problems:
        raise typer.Exit(EX_CONFIG)
    if not as_json:
        typer.echo(f"{path}: ok")


@cli.command()
def init(path: Annotated[str, typer.Argument()] = "jobrun.toml",
         force: Annotated[bool, typer.Option("--force")] = False,
         as_json: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Write a commented starter jobrun.toml (the repository's jobrun.toml.example)."""
    from importlib import resources

    if os.path.exists(path) and not force:
        fail(f"{path} exists (use --force to overwrite)")
    data = resources.files("jobrun").joinpath("jobrun.toml.example").read_bytes()
    with open(path, "wb") as f:
        f.write(data)
    say(as_json, {"path": os.path.abspath(path)}, f"wrote {path}")


@cli.command()
def top(config: ConfigOpt = None, store: StoreOpt = None,
        once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
        read_only: Annotated[bool, typer.Option(
            "--read-only", help="Refuse every action (retry, cancel, pause).")] = False
        ) -> None:
    """The operator's console: queues, jobs, one job; retry, cancel, pause (? lists keys)."""
    from ..tui.live import top_command

    top_command(config, store, once, read_only=read_only)
