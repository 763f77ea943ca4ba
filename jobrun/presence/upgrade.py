"""Whether an operator's command may migrate a store: not under a live service of an older
jobrun. A newer `jobrun top` or `jobrun retry` that moved a v5 store to v6 would leave the
v5 service unable to restart; so the store stays as it is until its service upgrades it, and
what needs the new schema is refused with that reason."""

from __future__ import annotations

import os

from ..store import is_postgres
from ..store.contract import Store
from . import presence_for
from .files import FilePresence


def held_back(store: Store) -> str | None:
    """None when opening `store` for writing may migrate it; else why not, in one line.
    `store` is opened without migrating (read-only)."""
    found, ours = store.schema()
    if found >= ours:
        return None
    presence = presence_for(store)
    live = [h for h in sorted(presence.holders()) if presence.alive(h)]
    if not live:
        return None  # nobody serves it: the first writer migrates it, as always
    return (f"store schema v{found}: read-only until its service upgrades it (service "
            f"{live[0]} of an older jobrun serves it; this jobrun would migrate it to "
            f"v{ours}, and that service could not restart)")


def may_be_served(location: str) -> bool:
    """Whether a live service may serve the store at `location`: asked of a SQLite store's
    lock files before any connection (a read-only one would leave -wal/-shm beside a file
    it may then refuse); a PostgreSQL store is asked once open."""
    if is_postgres(location):
        return True
    presence = FilePresence(os.path.realpath(location))
    return any(presence.alive(h) for h in presence.holders())
