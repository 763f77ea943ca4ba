"""Which queues exist, for commands that must not invent one from a typo (`jobrun pause`)."""

from __future__ import annotations

from .config import Settings
from .lock import holder_alive, holder_info, live_holders
from .store.contract import Store

DEFAULT_QUEUE = "default"


def live_queues(store: Store) -> dict[str, list[str]]:
    """Queue -> the live services (holder ids) serving it, from their lock files."""
    out: dict[str, list[str]] = {}
    for h in live_holders(store.path):
        queues = holder_info(store.path, h).get("queues") or {}
        if isinstance(queues, dict) and queues and holder_alive(store.path, h):
            for q in queues:
                out.setdefault(str(q), []).append(h)
    return out


def known_queues(store: Store, settings: Settings) -> set[str]:
    """The built-in `default`, every queue a config declares, every queue a live service
    serves, the queues the store's catalog sends tasks to, and every queue paused or resumed
    once."""
    known = {DEFAULT_QUEUE, *settings.queues}
    known.update(live_queues(store))
    known.update(store.queue_names())
    return known
