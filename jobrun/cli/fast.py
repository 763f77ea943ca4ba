"""`jobrun ls` and `jobrun start` without typer: a plain command line is parsed here.

typer, click and rich cost more start-up than the whole of `jobrun ls`, and more memory
than an idle service. A command line this module fully understands runs here; anything
else (`--help`, an unknown option, a bad value) goes to typer, which reports it as always.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .out import _print_json, fail, guarded, job_json, open_store

# command -> {option: its value's kind}: "flag" takes no value, "str" one, "limit" an int >= 1
_OPTIONS: dict[str, dict[str, str]] = {
    "ls": {"--state": "str", "--queue": "str", "--limit": "limit", "--json": "flag",
           "--config": "str", "--store": "str"},
    "start": {"--config": "str", "--store": "str", "--demo": "flag", "--log-format": "str",
              "--log-level": "str"},
}
# the options typer reads from the environment when they are not given (click skips "")
_ENVVARS = {"--config": "JOBRUN_CONFIG", "--store": "JOBRUN_STORE"}


def parse(args: list[str]) -> tuple[str, dict[str, str | bool]] | None:
    """(command, options) for a command line typer would read the same way, else None."""
    if not args or args[0] not in _OPTIONS:
        return None
    known = _OPTIONS[args[0]]
    opts: dict[str, str | bool] = {}
    rest = args[1:]
    while rest:
        word = rest.pop(0)
        name, eq, value = word.partition("=")
        kind = known.get(name)
        if kind is None or (kind == "flag" and eq) or (eq and not value):
            return None  # a positional, --help, an unknown or misspelt option: typer's
        if kind == "flag":
            opts[name] = True
            continue
        if not eq:
            if not rest or rest[0].startswith("-"):
                return None
            value = rest.pop(0)
        if kind == "limit" and not (value.isdigit() and int(value) >= 1):
            return None
        opts[name] = value
    for name, var in _ENVVARS.items():
        if name in known and name not in opts and os.environ.get(var):
            opts[name] = os.environ[var]
    return args[0], opts


def run_plain(args: list[str]) -> None:
    """Run the command and exit, if `parse` understands it; else return for typer."""
    parsed = parse(args)
    if parsed is None:
        return
    command, o = parsed

    def text(name: str) -> str | None:
        value = o.get(name)
        return value if isinstance(value, str) else None

    run: Callable[[], None]
    if command == "ls":
        def run() -> None:
            ls(text("--state"), text("--queue"), int(text("--limit") or 50),
               bool(o.get("--json")), text("--config"), text("--store"))
    else:
        def run() -> None:
            from .foreground import start

            start(text("--config"), text("--store"), bool(o.get("--demo")),
                  text("--log-format"), text("--log-level"))
    guarded(run)


def ls(state: str | None, queue: str | None, limit: int, as_json: bool, config: str | None,
       store: str | None) -> None:
    """`jobrun ls`: jobs, newest first."""
    from ..model import JobState
    from .out import EX_USAGE

    if state is not None and state not in {s.value for s in JobState}:
        fail(f"unknown state {state!r} (one of {', '.join(s.value for s in JobState)})",
             EX_USAGE)
    st = open_store(config, store, readonly=True).store
    records = st.list_jobs(state=state, queue=queue, limit=limit)
    if as_json:
        parents = st.parents([r.id for r in records]) if records else {}
        _print_json([{**job_json(r), "parent": parents.get(r.id)} for r in records])
        return
    from .plain import jobs_lines

    lines = jobs_lines(records)
    if lines is not None:
        print("\n".join(lines))
        return
    from .views import jobs_table, render

    render(jobs_table(records))
