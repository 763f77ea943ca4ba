"""The typer app of the `jobrun` commands, their shared options, and its entry point.

Exit codes: 0 done, 1 not found or refused, 2 usage error, 78 configuration error.
Errors are one line on stderr (a traceback only with --debug). What needs no typer
(output, errors, opening the store) is in `out.py`, re-exported here.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from .out import (
    DEBUG,
    EX_CONFIG,
    EX_OK,
    EX_REFUSED,
    EX_USAGE,
    Opened,
    _open,
    _print_json,
    argv,
    fail,
    guarded,
    job_json,
    open_store,
    say,
    warn,
)

__all__ = ["DEBUG", "EX_CONFIG", "EX_OK", "EX_REFUSED", "EX_USAGE", "ConfigOpt", "JsonOpt",
           "Opened", "StoreOpt", "_open", "_print_json", "cli", "fail", "job_json", "main",
           "open_store", "say", "warn"]

cli = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="jobrun: background jobs, cron and a dashboard on one SQLite file "
                       "or a PostgreSQL database (postgresql:// URL).")

ConfigOpt = Annotated[Optional[str], typer.Option("--config", envvar="JOBRUN_CONFIG",
                                                  help="jobrun.toml to use.")]
StoreOpt = Annotated[Optional[str], typer.Option(
    "--store", envvar="JOBRUN_STORE", help="The store: a SQLite file or a postgresql:// URL.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
#: A job id: a SQLite integer (past it, the store could only fail with OverflowError).
MAX_ID = 2**63 - 1
JobId = Annotated[int, typer.Argument(min=0, max=MAX_ID)]


@cli.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Tracebacks on errors "
                                                "(anywhere on the command line).")] = False
          ) -> None:
    DEBUG["on"] = DEBUG["on"] or debug


def main(args: list[str] | None = None) -> None:
    """Entry point through typer: one line per error, never a traceback unless --debug."""
    guarded(lambda: _through_typer(argv() if args is None else args))


def _through_typer(args: list[str]) -> None:
    try:
        # click returns an Exit's code in this mode
        rc = cli(args=args, prog_name="jobrun", standalone_mode=False)
        if isinstance(rc, int):
            sys.exit(rc)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        # Usage errors of typer's click (vendored or not): it shows them, exit code 2.
        code = getattr(exc, "exit_code", None)
        if hasattr(exc, "show") and isinstance(code, int):
            exc.show()
            sys.exit(code)
        if type(exc).__name__ == "Abort":
            sys.exit(130)
        raise

