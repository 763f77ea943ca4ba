"""A store location is a SQLite path or a postgresql:// URL; any other URL is refused where it
is given (config with its file and line, App, CLI), and no file is made from it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import jobrun
from conftest import run_cli
from jobrun.config import check
from jobrun.errors import StoreError
from jobrun.location import (
    absolute,
    beside,
    canonical,
    exists,
    foreign,
    is_postgres,
    writable_beside,
)
from jobrun.store import open_store
from jobrun.store.sqlite import SqliteStore

BAD = ["mysql://x@y/z", "POSTGRESQL://postgres@127.0.0.1:5432/test", "sqlite:///jobs.db"]


def test_the_kinds_of_location() -> None:
    assert is_postgres("postgresql://u@h:5432/db") and is_postgres("postgres://u@h/db")
    assert not is_postgres("jobs.db") and foreign("jobs.db") is None
    assert foreign("postgresql://u@h/db") is None
    assert "lower case" in (foreign("POSTGRESQL://u@h/db") or "")
    assert "mysql://" in (foreign("mysql://x@y/z") or "")
    assert absolute("postgresql://u@h/db") == "postgresql://u@h/db"
    assert beside("jobs.db", "/etc/app/jobrun.toml") == "/etc/app/jobs.db"
    assert beside("postgresql://u@h/db", "/etc/app/jobrun.toml") == "postgresql://u@h/db"


@pytest.mark.parametrize("url", BAD)
def test_a_foreign_url_is_refused_everywhere_and_makes_no_file(
        url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "jobrun.toml"
    cfg.write_text(f'[jobrun]\nstore = "{url}"\n', encoding="utf-8")
    _, problems = check(str(cfg))
    assert problems and f"{cfg}:2" in str(problems[0]) and "store" in str(problems[0])
    with pytest.raises(StoreError, match=r"not a store jobrun knows|lower case"):
        jobrun.App(url).store  # noqa: B018 - opening is the point
    with pytest.raises(StoreError, match="URL, not a SQLite file"):
        SqliteStore(url)
    out = run_cli("ls", "--store", url, cwd=str(tmp_path))
    assert out.returncode != 0 and ("jobrun knows" in out.stderr or "lower case" in out.stderr)
    out = run_cli("check", "--config", str(cfg), cwd=str(tmp_path))
    assert out.returncode == 78
    assert os.listdir(tmp_path) == ["jobrun.toml"]


@pytest.mark.parametrize("empty", ["", "   "])
def test_an_empty_store_location_is_refused_not_read_as_the_default(tmp_path: Path,
                                                                    empty: str) -> None:
    """`--store ""` (a variable that expanded to nothing) must not mean the default store."""
    with pytest.raises(jobrun.ConfigError, match="store location is empty"):
        jobrun.App(empty).enqueue("a:b", allow_unknown=True)
    r = run_cli("ls", "--store", empty, cwd=str(tmp_path))
    assert r.returncode != 0 and "store location is empty" in r.stderr, r.stderr
    assert os.listdir(tmp_path) == []


def test_what_a_location_says_of_itself(tmp_path: Path) -> None:
    """The questions callers asked by branching on the kind of store, answered in one place:
    canonical (a link resolved; a URL kept), exists (a URL is asked once connected), and
    whether this user may write beside the file (a URL has no folder)."""
    real = tmp_path / "real.db"
    real.write_bytes(b"")
    link = tmp_path / "link.db"
    link.symlink_to(real)
    url = "postgresql://u@h:5432/db"
    assert canonical(str(link)) == str(real) and canonical(url) == url
    assert exists(str(real)) and exists(url) and not exists(str(tmp_path / "typo.db"))
    assert writable_beside(str(real)) and not writable_beside(url)


def test_open_store_without_create_refuses_a_missing_file(tmp_path: Path) -> None:
    """What operator commands and the console's writer open: a typo never makes a store."""
    missing = tmp_path / "typo.db"
    with pytest.raises(StoreError, match="does not exist"):
        open_store(str(missing), create=False)
    assert not missing.exists()
    open_store(str(missing)).close()  # the default still sets one up
    open_store(str(missing), create=False).close()
