"""Which queues exist, for commands that must not invent one from a typo (`jobrun pause`)."""

from __future__ import annotations

from .config import Settings
from .presence import presence_for
from .store.contract import Store

DEFAULT_QUEUE = "default"


def live_queues(store: Store) -> dict[str, list[str]]:
    """Queue -> the live services (holder ids) serving it, from what they published."""
    return presence_for(store).live_queues()


def known_queues(store: Store, settings: Settings) -> set[str]:
    """The built-in `default`, every queue a config declares, every queue a live service
    serves, the queues the store's catalog sends tasks to, and every queue paused or resumed
    once."""
    known = {DEFAULT_QUEUE, *settings.queues}
    known.update(live_queues(store))
    known.update(store.queue_names())
    return known
