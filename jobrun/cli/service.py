"""`jobrun start`, `check`, `init`, `cron ls`, `pause`/`resume`: the service and its config."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from datetime import UTC
from typing import Annotated, Any, Optional

import typer

from .. import clock
from ..config import check as check_config
from ..errors import ConfigError
from ..ops.systemd import Notifier
from .base import (
    EX_CONFIG,
    EX_OK,
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

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _check_log_flags(log_format: str | None, log_level: str | None) -> None:
    """Bad --log-format / --log-level values are usage errors (exit 2), before anything."""
    if log_format is not None and log_format not in LOG_FORMATS:
        fail(f"--log-format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}",
             EX_USAGE)
    if log_level is not None and log_level.upper() not in LOG_LEVELS:
        fail(f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}",
             EX_USAGE)


# -- start ---------------------------------------------------------------------------------
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
    _check_log_flags(log_format, log_level)
    demo_dir: list[str] = []  # the demo's throwaway store folder, removed on the way out
    try:
        _start(config, store, demo, log_format, log_level, demo_dir)
    finally:
        _remove(demo_dir)


def _remove(folders: list[str]) -> None:
    import shutil

    for d in folders:
        shutil.rmtree(d, ignore_errors=True)


def _start(config: str | None, store: str | None, demo: bool, log_format: str | None,
           log_level: str | None, demo_dir: list[str]) -> None:
    from ..ops.logs import setup_logging
    from ..runtime import check_tasks, import_tasks, resolve
    from ..service import Service

    stop = threading.Event()
    signals = {"n": 0}

    def on_signal(signum: int, _frame: Any) -> None:
        signals["n"] += 1
        if signals["n"] > 1 and signum == signal.SIGINT:
            _remove(demo_dir)
            os._exit(130)  # a second Ctrl-C: now; the jobs in flight are rescued later
        stop.set()

    hup: dict[str, Any] = {"reloader": None, "pending": False}

    def on_hup(_signum: int, _frame: Any) -> None:
        r = hup["reloader"]
        if r is None:
            hup["pending"] = True  # still starting (or no config): reload once it can
            return
        threading.Thread(target=r.reload, args=("SIGHUP",), daemon=True).start()

    # Before anything slow: a SIGTERM while starting still means "drain and exit 0", and a
    # SIGHUP never kills the service.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hup)
    setup_logging(log_format or "text", log_level or "INFO")
    if demo and not store:
        import tempfile

        demo_dir.append(tempfile.mkdtemp(prefix="jobrun-demo-"))
        store = os.path.join(demo_dir[0], "jobs.db")
    rt = resolve(config, store, demo=demo)
    setup_logging(log_format or rt.settings.log_format, log_level or rt.settings.log_level)
    import_tasks(rt.settings)
    problems = check_tasks(rt.settings)
    if problems:
        raise problems[0]
    service = Service(rt.store, rt.settings)
    service.start()
    notifier = Notifier()
    notifier.ready(service.status_line())
    notifier.start_pings(service.healthy, service.status_line)
    reloader = None
    if rt.config and not demo:
        from ..ops.reload import Reloader

        reloader = Reloader(service, rt.config, notifier)
        reloader.start()
        hup["reloader"] = reloader
        if hup["pending"]:
            threading.Thread(target=reloader.reload, args=("SIGHUP",), daemon=True).start()
    elif not demo:
        logging.getLogger("jobrun").info("no --config: SIGHUP has nothing to reload")
    if demo:
        _run_demo(stop)
    while not stop.wait(0.5):
        pass
    notifier.stopping()
    if reloader is not None:
        reloader.stop()
    service.stop(service.settings.shutdown_timeout)
    notifier.close()
    _remove(demo_dir)
    # Drained and recorded: exit now, even if a task left a thread of its own running.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EX_OK)


def _run_demo(stop: threading.Event) -> None:
    from ..demo.tasks import enqueue_demo_jobs

    jobs = enqueue_demo_jobs()
    typer.echo(f"demo: enqueued {len(jobs)} jobs; watching them (Ctrl-C to stop)", err=True)

    def watch() -> None:
        seen: dict[int, str] = {}
        while not stop.wait(0.2):
            for j in jobs:
                state = j.refresh().state.value
                if seen.get(j.id) != state:
                    seen[j.id] = state
                    typer.echo(f"demo: job {j.id} {j.record.task} -> {state} "
                               f"(attempt {j.attempts})", err=True)
            if all(s in ("succeeded", "dead", "cancelled") for s in seen.values()) \
                    and len(seen) == len(jobs):
                typer.echo("demo: all demo jobs finished; the service keeps running "
                           "(Ctrl-C to stop)", err=True)
                return

    threading.Thread(target=watch, daemon=True, name="jobrun-demo").start()


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
