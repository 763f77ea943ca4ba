"""Shared pieces of the `jobrun` commands: the typer app, options, output, errors.

Exit codes: 0 done, 1 not found or refused, 2 usage error, 78 configuration error.
Errors are one line on stderr (a traceback only with --debug).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, NoReturn, Optional

import typer

from .. import clock
from ..errors import ConfigError, JobrunError, StoreError
from ..model import JobRecord

EX_OK, EX_REFUSED, EX_USAGE, EX_CONFIG = 0, 1, 2, 78

cli = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
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
    from ..app import App
    from ..runtime import import_tasks as do_import
    from ..runtime import resolve

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

