"""The `jobrun` command: thin typer commands over App, Service and the store.

Exit codes: 0 done, 1 not found or refused, 2 usage error, 78 configuration error.
Errors are one line on stderr (a traceback only with --debug).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Annotated, Any, NoReturn, Optional

import typer

from . import clock
from .config import check as check_config
from .config import duration
from .errors import ConfigError, JobrunError, StoreError
from .model import JobRecord

EX_OK, EX_REFUSED, EX_USAGE, EX_CONFIG = 0, 1, 2, 78

cli = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="jobrun: background jobs, cron and a dashboard on one SQLite file.")

ConfigOpt = Annotated[Optional[str], typer.Option("--config", envvar="JOBRUN_CONFIG",
                                                  help="jobrun.toml to use.")]
StoreOpt = Annotated[Optional[str], typer.Option("--store", envvar="JOBRUN_STORE",
                                                 help="SQLite store file.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
DEBUG = {"on": False}


@cli.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Tracebacks on errors.")] = False
          ) -> None:
    DEBUG["on"] = debug


def fail(message: str, code: int = EX_REFUSED) -> NoReturn:
    typer.echo(f"jobrun: {message}", err=True)
    raise typer.Exit(code)


def _open(config: str | None, store: str | None, *, import_tasks: bool = False) -> Any:
    """An App on the resolved store; config errors exit 78. With `import_tasks`, the
    config's task modules are imported so enqueue knows each task's queue and options."""
    from .app import App
    from .runtime import import_tasks as do_import
    from .runtime import resolve

    rt = resolve(config, store)
    if import_tasks:
        do_import(rt.settings)
    return App(rt.store, settings=rt.settings)


def job_json(r: JobRecord, full: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": r.id, "task": r.task, "queue": r.queue, "state": r.state.value,
        "attempts": r.attempts, "max_attempts": r.max_attempts, "priority": r.priority,
        "key": r.key, "run_at": clock.iso(r.run_at), "enqueued_at": clock.iso(r.enqueued_at),
        "started_at": clock.iso(r.started_at), "finished_at": clock.iso(r.finished_at),
        "holder": r.holder, "trace_id": r.trace_id,
    }
    if full:
        d.update(args=r.args, kwargs=r.kwargs, result=r.result, timeout=r.timeout,
                 errors=[{**e, "at": clock.iso(e.get("at"))} for e in r.errors])
    return d


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


# -- start ---------------------------------------------------------------------------------
@cli.command()
def start(config: ConfigOpt = None, store: StoreOpt = None,
          demo: Annotated[bool, typer.Option("--demo", help="Run the demo config on a "
                                             "throwaway store and enqueue demo jobs.")] = False,
          log_format: Annotated[str, typer.Option("--log-format", help="text or json")] = "text",
          log_level: Annotated[str, typer.Option("--log-level")] = "INFO") -> None:
    """Run the service in the foreground: workers, scheduler, reload. SIGTERM drains."""
    from .logs import setup_logging
    from .runtime import check_tasks, import_tasks, resolve
    from .service import Service

    stop = threading.Event()
    signals = {"n": 0}

    def on_signal(signum: int, _frame: Any) -> None:
        signals["n"] += 1
        if signals["n"] > 1 and signum == signal.SIGINT:
            os._exit(130)  # a second Ctrl-C: now; the jobs in flight are rescued later
        stop.set()

    # Before anything slow: a SIGTERM while starting still means "drain and exit 0".
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    setup_logging(log_format, log_level)
    if demo and not store:
        import tempfile

        store = os.path.join(tempfile.mkdtemp(prefix="jobrun-demo-"), "jobs.db")
    rt = resolve(config, store, demo=demo)
    import_tasks(rt.settings)
    problems = check_tasks(rt.settings)
    if problems:
        raise problems[0]
    service = Service(rt.store, rt.settings)
    service.start()
    reloader = None
    if rt.config and not demo:
        from .reload import Reloader

        reloader = Reloader(service, rt.config)
        reloader.start()
        hup = reloader

        def on_hup(_signum: int, _frame: Any) -> None:
            threading.Thread(target=hup.reload, args=("SIGHUP",), daemon=True).start()

        signal.signal(signal.SIGHUP, on_hup)
    if demo:
        _run_demo(stop)
    while not stop.wait(0.5):
        pass
    if reloader is not None:
        reloader.stop()
    service.stop(service.settings.shutdown_timeout)
    raise typer.Exit(EX_OK)


def _run_demo(stop: threading.Event) -> None:
    from .demo.tasks import enqueue_demo_jobs

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


# -- enqueue -------------------------------------------------------------------------------
@cli.command()
def enqueue(task: Annotated[Optional[str], typer.Argument(help="Task name.")] = None,
            args_json: Annotated[Optional[str], typer.Argument(metavar="[ARGS_JSON]")] = None,
            kwargs: Annotated[Optional[str], typer.Option("--kwargs")] = None,
            queue: Annotated[Optional[str], typer.Option("--queue")] = None,
            delay: Annotated[Optional[float], typer.Option("--delay")] = None,
            key: Annotated[Optional[str], typer.Option("--key")] = None,
            priority: Annotated[Optional[int], typer.Option("--priority")] = None,
            file: Annotated[Optional[str], typer.Option("--file", help="jobs.toml")] = None,
            config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Enqueue a job and print its id (or every [[job]] of --file, in one transaction)."""
    app = _open(config, store, import_tasks=True)
    if file:
        from .jobsfile import load_calls

        jobs = app.enqueue_many(load_calls(file))
        for j in jobs:
            typer.echo(str(j.id))
        return
    if not task:
        fail("give a TASK (or --file jobs.toml)", EX_USAGE)
    try:
        args = json.loads(args_json) if args_json else []
        kw = json.loads(kwargs) if kwargs else {}
    except json.JSONDecodeError as exc:
        fail(f"arguments are not JSON: {exc}", EX_USAGE)
    if isinstance(args, dict) and kwargs is None:
        args, kw = [], args
    if not isinstance(args, list):
        args = [args]
    job = app.enqueue(task, args=args, kwargs=kw, queue=queue, delay=delay, key=key,
                      priority=priority)
    typer.echo(str(job.id))


# -- reading -------------------------------------------------------------------------------
@cli.command("ls")
def ls_(state: Annotated[Optional[str], typer.Option("--state")] = None,
        queue: Annotated[Optional[str], typer.Option("--queue")] = None,
        limit: Annotated[int, typer.Option("--limit")] = 50, as_json: JsonOpt = False,
        config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Jobs, newest first."""
    from .model import JobState

    if state is not None and state not in {s.value for s in JobState}:
        fail(f"unknown state {state!r} (one of {', '.join(s.value for s in JobState)})",
             EX_USAGE)
    records = _open(config, store).store.list_jobs(state=state, queue=queue, limit=limit)
    if as_json:
        _print_json([job_json(r) for r in records])
        return
    from .views import jobs_table, render

    render(jobs_table(records))


@cli.command()
def show(job_id: int, as_json: JsonOpt = False, config: ConfigOpt = None,
         store: StoreOpt = None) -> None:
    """One job, with its error history."""
    rec = _open(config, store).store.get(job_id)
    if rec is None:
        fail(f"no job {job_id}")
    if as_json:
        _print_json(job_json(rec, full=True))
        return
    from .views import job_detail, render

    render(job_detail(rec))


@cli.command()
def stats(as_json: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Per queue: depth, running, oldest queued age, last hour's outcomes, failure rate."""
    from .stats import queue_stats

    data = queue_stats(_open(config, store).store, now=clock.now())
    if as_json:
        _print_json({"queues": data})
        return
    from .views import render, stats_table

    render(stats_table(data))


@cli.command()
def explain(job_id: int, as_json: JsonOpt = False, config: ConfigOpt = None,
            store: StoreOpt = None) -> None:
    """Why a job is not running now: its time, a retry, a paused queue, a cap or rate
    limit, or no live service serving its queue."""
    from .explain import explain_json, gather, reasons

    app = _open(config, store, import_tasks=True)
    rec = app.store.get(job_id)
    if rec is None:
        fail(f"no job {job_id}")
    now = clock.now()
    facts = gather(app.store, rec, app.settings, now)
    if as_json:
        _print_json(explain_json(rec, facts, now))
        return
    for line in reasons(rec, facts, now):
        typer.echo(line)


# -- acting --------------------------------------------------------------------------------
@cli.command()
def retry(job_id: Annotated[Optional[int], typer.Argument()] = None,
          dead: Annotated[bool, typer.Option("--dead", help="Every dead job.")] = False,
          config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Dead, cancelled or retrying jobs back to queued."""
    if (job_id is None) == (not dead):
        fail("give a job ID or --dead", EX_USAGE)
    app = _open(config, store)
    ids = app.store.retry(None if dead else job_id, now=clock.now())
    if not dead and not ids:
        rec = app.store.get(job_id) if job_id is not None else None
        fail(f"no job {job_id}" if rec is None else
             f"job {job_id} is {rec.state.value}: only dead, cancelled or retrying jobs retry")
    if app._ringer:
        app._ringer.ring()
    typer.echo(f"{len(ids)} job(s) queued again")


@cli.command()
def cancel(job_id: int, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Cancel a job: at once if waiting; a running one is asked to stop."""
    app = _open(config, store)
    before = app.store.cancel(job_id, now=clock.now())
    if before is None:
        fail(f"no job {job_id}")
    if before in ("succeeded", "dead", "cancelled"):
        fail(f"job {job_id} already finished ({before})")
    typer.echo(f"job {job_id} cancelled" + (" (it was running: asked to stop)"
                                            if before == "running" else ""))


@cli.command()
def prune(older_than: Annotated[str, typer.Option("--older-than", help="e.g. 7d, 12h")],
          config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Delete finished jobs older than that."""
    try:
        seconds = duration(older_than)
    except ValueError as exc:
        fail(str(exc), EX_USAGE)
    n = _open(config, store).store.prune(clock.now() - seconds)
    typer.echo(f"pruned {n} job(s)")


@cli.command()
def pause(queue: str, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Stop claiming from a queue; its jobs stay queued."""
    _open(config, store).store.set_paused(queue, True)
    typer.echo(f"queue {queue} paused")


@cli.command()
def resume(queue: str, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Claim from a paused queue again."""
    app = _open(config, store)
    app.store.set_paused(queue, False)
    if app._ringer:
        app._ringer.ring()
    typer.echo(f"queue {queue} resumed")


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
    from datetime import datetime, timezone

    from .runtime import resolve
    from .scheduler import describe

    rt = resolve(config, store)
    if from_:
        try:
            start_at = datetime.fromisoformat(from_.replace("Z", "+00:00"))
        except ValueError:
            fail(f"--from {from_!r} is not an ISO 8601 datetime", EX_USAGE)
        if start_at.tzinfo is None:
            start_at = start_at.replace(tzinfo=timezone.utc)
    else:
        start_at = datetime.now(timezone.utc)
    entries = [describe(e, start_at, count) for e in rt.settings.cron]
    if as_json:
        _print_json(entries)
        return
    from .views import cron_table, render

    render(cron_table(entries))


# -- config ----------------------------------------------------------------------------------
@cli.command()
def check(config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Validate the config: every problem with its file, line and reason; exit 78 if any."""
    from .runtime import check_tasks, import_tasks

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
    for p in problems:
        typer.echo(f"jobrun: {p}", err=True)
    if problems:
        raise typer.Exit(EX_CONFIG)
    typer.echo(f"{path}: ok")


@cli.command()
def init(path: Annotated[str, typer.Argument()] = "jobrun.toml",
         force: Annotated[bool, typer.Option("--force")] = False) -> None:
    """Write a commented starter jobrun.toml."""
    from importlib import resources

    if os.path.exists(path) and not force:
        fail(f"{path} exists (use --force to overwrite)")
    text = resources.files("jobrun").joinpath("jobrun.toml.example").read_text("utf-8")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    typer.echo(f"wrote {path}")


def main() -> None:
    """Entry point: one line per error, never a traceback unless --debug."""
    try:
        rc = cli(standalone_mode=False)  # click returns an Exit's code in this mode
        if isinstance(rc, int):
            sys.exit(rc)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        _report(exc, EX_CONFIG)
    except (StoreError, JobrunError) as exc:
        _report(exc, EX_REFUSED)
    except TypeError as exc:
        _report(exc, EX_REFUSED)
    except Exception as exc:
        # Usage errors of typer's click (vendored or not): it shows them, exit code 2.
        code = getattr(exc, "exit_code", None)
        if hasattr(exc, "show") and isinstance(code, int):
            exc.show()
            sys.exit(code)
        if type(exc).__name__ == "Abort":
            sys.exit(130)
        _report(exc, EX_REFUSED)
    sys.exit(EX_OK)


def _report(exc: BaseException, code: int) -> NoReturn:
    if DEBUG["on"] or "--debug" in sys.argv:
        import traceback

        traceback.print_exception(exc)
    else:
        typer.echo(f"jobrun: {exc}", err=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
