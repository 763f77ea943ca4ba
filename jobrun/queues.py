"""Which queues exist, for commands that must not invent one from a typo (`jobrun pause`)."""

from __future__ import annotations

from .config import Settings
from .lock import holder_alive, holder_info, live_holders
from .store.sqlite import SqliteStore

DEFAULT_QUEUE = "default"


def live_queues(store: SqliteStore) -> dict[str, list[str]]:
    """Queue -> the live services (holder ids) serving it, from their lock files."""
    out: dict[str, list[str]] = {}
    for h in live_holders(store.path):
        queues = holder_info(store.path, h).get("queues") or {}
        if isinstance(queues, dict) and queues and holder_alive(store.path, h):
            for q in queues:
                out.setdefault(str(q), []).append(h)
    return out


def known_queues(store: SqliteStore, settings: Settings) -> set[str]:
    """The built-in `default`, every queue a config declares, every queue a live service
    serves, and every queue the store has a row for (paused or resumed once)."""
    known = {DEFAULT_QUEUE, *settings.queues}
    known.update(live_queues(store))
    # The one read of the `queues` table by name (store/queries.sql has only the paused).
    known.update(r[0] for r in store.read("SELECT name FROM queues"))
    return known
