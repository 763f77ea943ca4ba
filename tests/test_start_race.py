"""Stores opened in the same instant on a file that is not WAL yet: every opener gets the
store, none dies with "database is locked".

In rollback-journal mode `PRAGMA journal_mode=WAL` takes a read lock and then wants the
write lock; two connections doing it at once each hold the read lock the other waits on,
and SQLite breaks that deadlock by failing one at once, without calling its busy handler.
Before the fix one opener in ten or so died with "stayed locked for 30s" after no wait at
all. Here real processes, released together, open the same fresh file round after round:
as services (`SqliteStore`), as producers (`App.enqueue`), then as real `jobrun start`
and `jobrun enqueue` commands.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import apsw
import pytest

from conftest import JOBRUN, ROOT
from crashapp.harness import ServiceProc, wait_for, wait_serving, write_config

#: A child that opens the store at each path read from stdin, in the instant it reads it
#: (every child is sent the same line together), and says "ok" or the error.
CHILD = r"""
import sys
import jobrun
from jobrun.store.sqlite import SqliteStore
role = sys.argv[1]
print("ready", flush=True)
for line in sys.stdin:
    path = line.strip()
    try:
        if role == "producer":
            app = jobrun.App(path)
            app.enqueue("some.task", args=[1])
            app.close()
        else:
            SqliteStore(path).close()
        print("ok", flush=True)
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}".replace("\n", " "), flush=True)
"""

ROUNDS = 40
CHILDREN = 4


def ledger_file(path: Path) -> None:
    """What a test's ledger or another program does first: a table in rollback mode."""
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY)")
    conn.close()


def race(tmp_path: Path, roles: list[str], made: str) -> list[str]:
    """ROUNDS rounds of every child opening one fresh file at once; the failures."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    kids = [subprocess.Popen([sys.executable, "-c", CHILD, role], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env) for role in roles]
    failures: list[str] = []
    try:
        for kid in kids:
            assert kid.stdout is not None and kid.stdout.readline().strip() == "ready"
        for n in range(ROUNDS):
            path = tmp_path / f"r{n}" / "jobs.db"
            path.parent.mkdir(mode=0o700)
            if made == "ledger":
                ledger_file(path)
            for kid in kids:  # every child blocks on this line: they open in one instant
                assert kid.stdin is not None
                kid.stdin.write(f"{path}\n")
                kid.stdin.flush()
            for kid in kids:
                assert kid.stdout is not None
                answer = kid.stdout.readline().strip()
                if answer != "ok":
                    failures.append(f"round {n}: {answer}")
            conn = apsw.Connection(str(path))
            assert conn.execute("PRAGMA journal_mode").get == "wal"
            conn.close()
    finally:
        for kid in kids:
            assert kid.stdin is not None
            kid.stdin.close()
            kid.wait(30)
    return failures


@pytest.mark.parametrize("made", ["ledger", "nothing"])
def test_services_opening_a_fresh_file_at_once_all_get_the_store(tmp_path: Path,
                                                                 made: str) -> None:
    assert race(tmp_path, ["service"] * CHILDREN, made) == []


@pytest.mark.parametrize("made", ["ledger", "nothing"])
def test_producers_and_services_opening_a_fresh_file_at_once_all_get_it(
        tmp_path: Path, made: str) -> None:
    roles = ["producer", "service"] * (CHILDREN // 2)
    assert race(tmp_path, roles, made) == []


def has_open(pid: int, path: str) -> bool:
    """Whether process pid has the file open (Linux /proc)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                return True
        except OSError:
            continue
    return False


def test_jobrun_start_twice_and_enqueue_in_one_instant_on_a_ledger_file(tmp_path: Path) -> None:
    """The workflow storm's start: two `jobrun start` and a `jobrun enqueue` on the file a
    ledger just made, released in one instant (the test holds the file's exclusive lock
    until all three have opened it and wait for their first read); all three get the
    store: both serve, the job is stored, both drain."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT)]))
    for n in range(3):
        folder = tmp_path / f"r{n}"
        folder.mkdir(mode=0o700)
        cfg = write_config(folder)
        store = os.path.realpath(folder / "jobs.db")
        ledger_file(Path(store))
        gate = apsw.Connection(store)
        gate.execute("BEGIN EXCLUSIVE")  # rollback mode: nobody reads until it ends
        services = [ServiceProc(cfg, folder / f"svc-{i}.log") for i in range(2)]
        producer = subprocess.Popen([*JOBRUN, "enqueue", "crashapp.tasks:record",
                                     "--config", cfg], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=env, cwd=folder)
        try:
            pids = [svc.pid for svc in services] + [producer.pid]
            wait_for(lambda: all(has_open(pid, store) for pid in pids), 60,  # noqa: B023
                     "the services and the producer to open the store")
            gate.execute("ROLLBACK")
            gate.close()
            out, err = producer.communicate(timeout=60)
            assert producer.returncode == 0, err
            for svc in services:
                wait_serving(store, svc, timeout=60)
            for svc in services:
                svc.send(signal.SIGTERM)
            for svc in services:
                assert svc.wait(60) == 0, svc.log_text()
                assert "locked" not in svc.log_text()
            db = apsw.Connection(store)
            assert db.execute("SELECT count(*) FROM jobs WHERE id = ?", (int(out),)).get == 1
            db.close()
        finally:
            for svc in services:
                svc.kill()
            producer.kill()
            producer.wait()
