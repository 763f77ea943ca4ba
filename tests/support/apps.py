"""In-process apps and services for a test, closed after it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jobrun

OPEN: list[jobrun.App] = []


def open_app(cfg: str) -> jobrun.App:
    """An App on the config's store, closed (its service stopped) after the test."""
    app = jobrun.App.from_config(cfg)
    OPEN.append(app)
    return app


def close_apps() -> None:
    while OPEN:
        OPEN.pop().close()


@contextlib.contextmanager
def served(app: jobrun.App) -> Iterator[jobrun.App]:
    """An in-process service for the block, stopped (drained) afterwards."""
    app.start()
    try:
        yield app
    finally:
        app.stop(timeout=10)
