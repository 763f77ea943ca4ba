"""`jobrun store copy SRC DST`: move a user's store between SQLite and PostgreSQL."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from .base import JsonOpt, cli, fail, say

if TYPE_CHECKING:
    from ..presence.contract import Presence
    from ..store.contract import Store

store_cli = typer.Typer(no_args_is_help=True, help="The store itself: copy it elsewhere.")
cli.add_typer(store_cli, name="store")

#: How a user stops a service (jobrun has no stop command: the service is a process).
STOP = "sudo systemctl stop jobrun, or Ctrl-C / kill -TERM the jobrun start process"


@store_cli.command("copy")
def copy(src: Annotated[str, typer.Argument(help="The store to copy: a SQLite file or a "
                                                 "postgresql:// URL. Stop its services first.")],
         dst: Annotated[str, typer.Argument(help="An empty or new store to copy it into.")],
         as_json: JsonOpt = False) -> None:
    """Copy every job (in every state, with its errors), cron fire, event and workflow
    record of SRC into DST, ids kept; DST must be empty. SRC is only read, and must have no
    live service: its running and queued jobs would run again once DST is served."""
    from ..location import absolute
    from ..presence.files import FilePresence
    from ..store import is_postgres, open_store
    from ..store.copy import copy_store

    for role, where in (("source", src), ("target", dst)):
        if not where.strip():  # abspath('') is the current folder: never a store meant
            fail(f"store copy: the {role} location is empty ({where!r}): give a SQLite file "
                 "path or a postgresql:// URL")
    src, dst = absolute(src), absolute(dst)
    if not is_postgres(src):
        if not os.path.exists(src):
            fail(f"store {src} does not exist (nothing to copy)")
        _refuse_served(src, FilePresence(os.path.realpath(src)))  # before any -wal is made
    source = open_store(src, readonly=True)
    try:
        if is_postgres(src):
            _refuse_served(_shown(src), _presence(source))
        target = open_store(dst)
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


def _presence(store: Store) -> Presence:
    from ..presence import presence_for
    return presence_for(store)


def _refuse_served(shown: str, presence: Presence) -> None:
    """Refuse a source that live services serve: the jobs they run and claim meanwhile
    would be copied too, and run a second time once the target is served."""
    live, unknown = [], []
    for h in sorted(presence.holders()):
        try:
            if presence.alive(h):
                live.append(h)
        except OSError:  # a SQLite holder's lock file this user may not open
            unknown.append(h)
    if live:
        named = ", ".join(_who(presence, h) for h in live[:3]) + (", ..." if len(live) > 3 else "")
        fail(f"store copy: the source {shown} is served by {len(live)} live service(s) "
             f"({named}): stop them first ({STOP}), then copy again; copied now, the jobs "
             "they run or claim meanwhile would run a second time once the target is served")
    if unknown:
        fail(f"store copy: cannot tell whether service {unknown[0]} still serves the source "
             f"{shown} (its lock file is not open to this user): run as the store's owner")


def _who(presence: Presence, holder: str) -> str:
    """A holder as messages name it: its id (`<pid>-<random>`) and its host, if it said."""
    host = presence.info(holder).get("host")
    return holder + (f" on {host}" if host else "")


def _shown(location: str) -> str:
    """A location as messages show it: no password."""
    from ..store import is_postgres
    if not is_postgres(location):
        return location
    from ..store.postgres_sql import redact
    return redact(location)
