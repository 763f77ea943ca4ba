"""The `jobrun` command: thin typer commands over App, Service and the store.

Exit codes: 0 done, 1 not found or refused, 2 usage error, 78 configuration error.
Errors are one line on stderr (a traceback only with --debug).

typer (and the rich it draws with) is imported only when a command needs it: a plain
`jobrun ls` or `jobrun start` command line is run by `fast.py` without it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["cli", "main"]


def main() -> None:
    """The console script: the fast path when the command line is plain, else typer."""
    from .out import argv, hold_signals

    args = argv()
    if args[:1] == ["start"]:
        hold_signals()
    from .fast import run_plain

    run_plain(args)  # exits when it ran the command
    from . import jobs, service, store  # noqa: F401 - registers the commands
    from .base import main as typer_main

    typer_main(args)


def __getattr__(name: str) -> Any:
    if name == "cli":
        from . import jobs, service, store  # noqa: F401 - registers the commands
        from .base import cli

        return cli
    raise AttributeError(f"module 'jobrun.cli' has no attribute {name!r}")
