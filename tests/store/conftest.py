"""The store contract suite runs against every store implementation (SQLite today)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobrun.store import open_store
from jobrun.store.contract import Store

IMPLEMENTATIONS = ["sqlite"]


@pytest.fixture(params=IMPLEMENTATIONS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = open_store(str(tmp_path / "jobs.db"))
    yield s
    s.close()
