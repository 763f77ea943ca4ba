"""`jobrun store copy SRC DST`: move a user's store between SQLite and PostgreSQL."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from .base import JsonOpt, cli, fail, say

store_cli = typer.Typer(no_args_is_help=True, help="The store itself: copy it elsewhere.")
cli.add_typer(store_cli, name="store")


@store_cli.command("copy")
def copy(src: Annotated[str, typer.Argument(help="The store to copy: a SQLite file or a "
                                                 "postgresql:// URL.")],
         dst: Annotated[str, typer.Argument(help="An empty or new store to copy it into.")],
         as_json: JsonOpt = False) -> None:
    """Copy every job (in every state, with its errors), cron fire, event and workflow
    record of SRC into DST, ids kept; DST must be empty. SRC is only read."""
    from ..store import is_postgres, open_store
    from ..store.copy import copy_store

    if not is_postgres(src) and not os.path.exists(src):
        fail(f"store {src} does not exist (nothing to copy)")
    source = open_store(src if is_postgres(src) else os.path.abspath(src), readonly=True)
    try:
        target = open_store(dst if is_postgres(dst) else os.path.abspath(dst))
        try:
            copied = copy_store(source, target)
        finally:
            target.close()
    finally:
        source.close()
    shown = [_shown(s) for s in (src, dst)]
    total = ", ".join(f"{n} {t}" for t, n in copied.items() if n)
    say(as_json, {"source": shown[0], "target": shown[1], "copied": copied},
        f"copied {total or 'nothing (the source is empty)'} into {shown[1]}")


def _shown(location: str) -> str:
    """A location as messages show it: no password."""
    from ..store import is_postgres
    if not is_postgres(location):
        return location
    from ..store.postgres_sql import redact
    return redact(location)
