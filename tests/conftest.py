"""Shared fixtures: a fresh store file per test, and a helper to run `jobrun` for real."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.wait import wait_for as _wait_for

ROOT = Path(__file__).resolve().parent.parent
JOBRUN = [sys.executable, "-m", "jobrun.cli"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", help="full-size torture tests")


@pytest.fixture(autouse=True, scope="session")
def _no_url_made_a_path() -> Iterator[None]:
    """A postgresql:// store taken for a file path makes a `postgresql:` folder in the cwd
    (a run once committed 23 of them): the suite fails if any test does it."""
    stray = [Path.cwd() / "postgresql:", ROOT / "postgresql:"]
    before = {p for p in stray if p.exists()}
    yield
    made = [str(p) for p in stray if p.exists() and p not in before]
    assert not made, f"a store URL was opened as a file path: {made}"


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's own store or config."""
    monkeypatch.delenv("JOBRUN_STORE", raising=False)
    monkeypatch.delenv("JOBRUN_CONFIG", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


@pytest.fixture
def store_path(tmp_path: Path) -> str:
    return str(tmp_path / "jobs.db")


@pytest.fixture
def app(store_path: str) -> Iterator[object]:
    import jobrun

    a = jobrun.App(store_path)
    yield a
    a.close()


def wait_for(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    """Wait on a condition with a deadline (never a bare sleep)."""
    return _wait_for(cond, timeout, what)


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: str | None = None,
            input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real `jobrun` command (as `python -m jobrun.cli`, same interpreter)."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([*JOBRUN, *args], capture_output=True, text=True, env=e, cwd=cwd,
                          input=input, timeout=timeout)


# -- torture tests (tests/torture): the short/--long switch, a seed, a small tmpfs -------------
# (here, not in tests/torture/conftest.py: two modules named `conftest` would shadow each
# other for the tests that `from conftest import ...`)
@pytest.fixture
def long(pytestconfig: pytest.Config) -> bool:
    return bool(pytestconfig.getoption("--long"))


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    s = int(os.environ.get("JOBRUN_TORTURE_SEED", random.randrange(1 << 30)))
    print(f"{request.node.name}: seed {s} (JOBRUN_TORTURE_SEED={s} to replay)")
    return s


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """mount(size_bytes) -> a fresh tmpfs of that size (a real ENOSPC); skips without root."""
    mounted: list[Path] = []

    def mount(size: int) -> Path:
        where = tmp_path / f"fs{len(mounted)}"
        where.mkdir(mode=0o700)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                            str(where)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); "
                        "the max_page_count tests cover a full store without root")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
