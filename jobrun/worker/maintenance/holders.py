"""Forget what dead holders published (their lock files, their rows): asking a dead
holder's liveness is enough beside a SQLite store; on PostgreSQL its row is deleted."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import ServiceView


def sweep(v: ServiceView) -> None:
    v.presence.sweep(v.holder)
