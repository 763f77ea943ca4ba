"""Renew this service's leases while it has jobs in flight (at a third of the lease), so
only a holder that stops renewing (stuck) loses its jobs to the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import ServiceView


def extend(v: ServiceView, now: float) -> None:
    if len(v.inflight):
        v.store.extend_leases(v.holder, now=now, lease=v.settings().lease)
