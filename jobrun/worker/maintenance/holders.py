"""Remove the lock files of dead holders (asking a lock removes a dead one's file)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lock import holder_alive, live_holders

if TYPE_CHECKING:
    from . import ServiceView


def sweep(v: ServiceView) -> None:
    for h in live_holders(v.path):
        if h != v.holder:
            holder_alive(v.path, h)
