"""A store in a folder this user may not write (file 0644 in a 0555 folder): readers read,
writers are told the folder must be writable for the -wal and -shm files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

import jobrun
from conftest import JOBRUN
from jobrun.errors import StoreError
from jobrun.store.files import immutable_uri, readonly_fallback, wrap
from jobrun.store.sqlite import SqliteStore

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
READ = ("from jobrun.store.sqlite import SqliteStore; import sys; "
        "s = SqliteStore(sys.argv[1], readonly=True); print(len(s.list_jobs())); s.close()")


def make_store(folder: Path, jobs: int = 2) -> str:
    path = str(folder / "jobs.db")
    app = jobrun.App(path)
    for i in range(jobs):
        app.enqueue("mail:send", args=[i])
    app.close()
    assert sorted(os.listdir(folder)) == ["jobs.db"]  # -wal/-shm gone with the last close
    return path


@pytest.fixture
def locked_folder() -> Iterator[Path]:
    """A 0555 folder under /tmp (tmp_path's parents are 0700: nobody could not reach it)."""
    folder = Path(tempfile.mkdtemp(prefix="jobrun-ro-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    folder.chmod(0o755)
    shutil.rmtree(folder, ignore_errors=True)


def as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBRUN_")}
    env["HOME"] = "/nonexistent"
    return subprocess.run([*NOBODY, *argv], capture_output=True, text=True, env=env,
                          cwd="/", timeout=60)


def need_nobody() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a real unprivileged user (root ignores "
                    "permission bits); the immutable path is tested directly below")
    r = as_nobody(sys.executable, "-c", "import jobrun")
    if r.returncode != 0:
        pytest.skip(f"uid 65534 cannot run this interpreter/venv: {r.stderr.strip()[-200:]}")


def test_an_unprivileged_reader_reads_and_a_writer_is_told_why(locked_folder: Path) -> None:
    need_nobody()
    # Given a store 0644 in a folder 0555, without -wal/-shm
    path = make_store(locked_folder)
    os.chmod(path, 0o644)
    locked_folder.chmod(0o555)
    # When another user reads it: the jobs are listed, nothing is created beside the file
    r = as_nobody(sys.executable, "-c", READ, path)
    assert r.returncode == 0 and r.stdout.split() == ["2"], r.stderr
    assert sorted(os.listdir(locked_folder)) == ["jobs.db"]
    # ... and a writer gets a StoreError saying what to change (exit 1, no traceback)
    r = as_nobody(*JOBRUN, "enqueue", "mail:send", "--store", path)
    assert r.returncode == 1, r.stderr
    assert "must be writable by this user (nobody)" in r.stderr and "-wal and -shm" in r.stderr
    assert "Traceback" not in r.stderr


def test_jobrun_ls_as_another_user(locked_folder: Path) -> None:
    need_nobody()
    path = make_store(locked_folder)
    os.chmod(path, 0o644)
    locked_folder.chmod(0o555)
    r = as_nobody(*JOBRUN, "ls", "--json", "--store", path)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)) == 2


def test_a_live_services_store_is_read_with_its_wal(locked_folder: Path) -> None:
    """A running service keeps -wal/-shm open: SQLite reads through them (no fallback)."""
    need_nobody()
    path = make_store(locked_folder)
    os.chmod(path, 0o644)
    owner = SqliteStore(path)  # keeps -wal/-shm while open, as a running service does
    owner.connection().execute("PRAGMA wal_autocheckpoint=0")
    jobrun.App(path).enqueue("mail:send", args=[99])  # committed into the -wal only
    locked_folder.chmod(0o555)
    try:
        r = as_nobody(sys.executable, "-c", READ, path)
        assert r.returncode == 0 and r.stdout.split() == ["3"], r.stderr
    finally:
        locked_folder.chmod(0o755)
        owner.close()


def test_a_reader_refuses_a_wal_it_cannot_read(locked_folder: Path, tmp_path: Path) -> None:
    """A -wal without its -shm: immutable would skip the jobs committed in the -wal."""
    need_nobody()
    path = make_store(tmp_path)
    owner = SqliteStore(path)
    owner.connection().execute("PRAGMA wal_autocheckpoint=0")
    jobrun.App(path).enqueue("mail:send", args=[99])
    for name in ("jobs.db", "jobs.db-wal"):  # as left by a crash, then the -shm removed
        shutil.copy(tmp_path / name, locked_folder / name)
        os.chmod(locked_folder / name, 0o644)
    owner.close()
    locked_folder.chmod(0o555)
    r = as_nobody(sys.executable, "-c", READ, str(locked_folder / "jobs.db"))
    assert r.returncode != 0 and r.stdout == ""
    assert "jobs.db-wal exists" in r.stderr and "run as the store's owner" in r.stderr, r.stderr
    assert "Traceback" in r.stderr and "StoreError" in r.stderr


def test_the_immutable_uri_reads_every_job(tmp_path: Path) -> None:
    """Directly: a path SQLite must see verbatim (space, ?, #, %) read as immutable."""
    folder = tmp_path / "odd ?#% name"
    folder.mkdir()
    path = make_store(folder, jobs=3)
    conn = apsw.Connection(immutable_uri(path),
                           flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    assert conn.execute("SELECT count(*) FROM jobs").get == 3
    with pytest.raises(apsw.ReadOnlyError):
        conn.execute("DELETE FROM jobs")
    conn.close()
    assert sorted(os.listdir(folder)) == ["jobs.db"]  # no -wal, no -shm


def test_no_fallback_where_a_normal_open_works_or_a_wal_exists(tmp_path: Path) -> None:
    path = make_store(tmp_path)
    assert readonly_fallback(path) is None  # the folder is writable: open normally
    Path(path + "-wal").touch()
    assert readonly_fallback(path) is None


@pytest.fixture
def readonly_mount(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(writable folder, the same folder bind-mounted read-only): EROFS binds root too."""
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    r = subprocess.run(["mount", "--bind", str(src), str(ro)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot bind-mount here ({r.stderr.strip() or r.returncode})")
    try:
        r = subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], capture_output=True,
                           text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot remount read-only ({r.stderr.strip() or r.returncode})")
        yield src, ro
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


def test_readonly_store_on_a_read_only_folder_in_process(
        readonly_mount: tuple[Path, Path]) -> None:
    src, ro = readonly_mount
    make_store(src)
    path = str(ro / "jobs.db")
    assert readonly_fallback(path) is not None
    reader = SqliteStore(path, readonly=True)
    assert [r.args for r in reader.list_jobs()] == [[1], [0]]
    reader.close()
    with pytest.raises(StoreError, match=r"must be writable by this user .* -wal and -shm"):
        SqliteStore(path)


def test_a_busy_store_says_whether_it_waited(tmp_path: Path) -> None:
    """A stale snapshot comes back busy at once: the error must not claim the 30 s wait ran
    out (that sent a reader of a CI log after a lock holder that never was)."""
    path = str(tmp_path / "x.db")
    a = apsw.Connection(path)
    a.execute("PRAGMA journal_mode=WAL").fetchall()
    a.execute("CREATE TABLE t (x)")
    b = apsw.Connection(path)
    b.set_busy_timeout(5_000)
    b.execute("BEGIN")
    assert b.execute("SELECT count(*) FROM t").get == 0
    a.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(apsw.BusyError) as caught:
        b.execute("INSERT INTO t VALUES (2)")
    message = str(wrap(caught.value, path))
    assert "SQLITE_BUSY_SNAPSHOT" in message and "stayed locked" not in message
    b.execute("ROLLBACK")
    a.execute("BEGIN IMMEDIATE")
    b.set_busy_timeout(50)
    with pytest.raises(apsw.BusyError) as caught:
        b.execute("BEGIN IMMEDIATE")
    assert "stayed locked for 30s" in str(wrap(caught.value, path))
    a.execute("ROLLBACK")
    a.close()
    b.close()
