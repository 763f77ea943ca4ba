"""Real `jobrun start` processes for tests: configs, start/signal/wait, store reads.

No mocks: a service is `python -m jobrun.cli start --config FILE`, with tests/ on its
PYTHONPATH so that `import = ["crashapp.tasks"]` resolves. Output goes to a file (a pipe
nobody reads would fill up and block the service). The store is a SQLite file or a
PostgreSQL URL: `Reader`, `serving` and `sigstop_outside_write` work on both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw

from jobrun.location import is_postgres
from support.config import write_config as _write_config
from support.postgres import client_ports
from support.storedb import StoreDB
from support.wait import wait_for as _wait_for

TESTS = Path(__file__).resolve().parent.parent
JOBRUN = [sys.executable, "-m", "jobrun.cli"]


def wait_for(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition",
             pause_cap: float = 0.05) -> Any:
    """Poll a condition with a deadline (as conftest.wait_for, with a finer pause cap)."""
    return _wait_for(cond, timeout, what, pause=0.002, pause_cap=pause_cap)


def write_config(folder: Path, name: str = "jobrun.toml", *, jobrun: str = "",
                 concurrency: int = 8, max_attempts: int = 5, store: str = "jobs.db") -> str:
    """A config importing crashapp.tasks, on `store` (default: `jobs.db` in `folder`)."""
    return _write_config(folder, imports=["crashapp.tasks"], name=name, jobrun=jobrun,
                         store=store,
                         default_queue={"concurrency": concurrency,
                                        "max_attempts": max_attempts})


def task(name: str) -> str:
    return f"crashapp.tasks:{name}"


class ServiceProc:
    """One `jobrun start` subprocess."""

    def __init__(self, config: str, log: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(TESTS), env.get("PYTHONPATH", "")) if p)
        env.pop("JOBRUN_STORE", None)
        env.pop("JOBRUN_CONFIG", None)
        self.log_path = log
        self._log = open(log, "wb")
        self.proc = subprocess.Popen([*JOBRUN, "start", "--config", config],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     cwd=os.path.dirname(config))
        self.pid = self.proc.pid
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"service {self.pid} still running after {timeout}s; log:\n"
                                 + self.log_text()[-3000:]) from None

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def holder_prefix(self) -> str:
        """Holder ids are `<pid>-<random>`."""
        return f"{self.pid}-"

    def kill(self) -> None:
        """Cleanup: SIGKILL (works on a stopped process too) and reap."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        try:
            self.proc.wait(10)
        finally:
            self._log.close()


def holders_dir(store: str) -> str:
    return os.path.realpath(store) + ".jobrun/holders"


def serving(store: str, svc: ServiceProc) -> bool:
    """Whether the service holds its liveness lock (its `start()` ran): its lock file, or
    on PostgreSQL what it publishes once it holds its advisory lock."""
    if is_postgres(store):
        import psycopg

        db = StoreDB(store)
        try:
            return bool(db.one("SELECT count(*) FROM meta WHERE name LIKE ?",
                               (f"holder:{svc.holder_prefix()}%",)))
        except psycopg.errors.UndefinedTable:  # no tables made yet: nobody serves
            return False
        finally:
            db.close()
    try:
        names = os.listdir(holders_dir(store))
    except FileNotFoundError:
        return False
    return any(n.startswith(svc.holder_prefix()) for n in names)


def wait_serving(store: str, svc: ServiceProc, timeout: float = 20.0) -> None:
    def ok() -> bool:
        if not svc.alive():
            raise AssertionError(f"service {svc.pid} exited with {svc.proc.returncode}:\n"
                                 + svc.log_text()[-3000:])
        return serving(store, svc)
    wait_for(ok, timeout, f"service {svc.pid} to start")


def flock_holders(path: str) -> list[int]:
    """Pids holding a flock on `path`, read from /proc/locks (matched by inode)."""
    try:
        ino = os.stat(path).st_ino
    except FileNotFoundError:
        return []
    pids = []
    with open("/proc/locks", encoding="ascii") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 6 or parts[1] != "FLOCK":  # "->" lines are blocked waiters
                continue
            if parts[5].rsplit(":", 1)[-1] == str(ino):
                pids.append(int(parts[4]))
    return pids


def leader_lock_holders(store: str, procs: list[ServiceProc]) -> list[ServiceProc] | None:
    """Of `procs`, those holding the store's cron leader lock: the flock on
    `<store>.jobrun/leader.lock` (from /proc/locks), or on PostgreSQL the advisory lock
    leader/cron (from pg_locks, matched by the sessions' client ports). None: cannot tell
    (no /proc/locks)."""
    if is_postgres(store):
        db = StoreDB(store)
        try:
            ports = db.lock_ports("leader", "cron")
        finally:
            db.close()
        found = []
        for p in procs:
            try:
                if client_ports(p.pid) & ports:
                    found.append(p)
            except FileNotFoundError:  # it just died
                pass
        return found
    if not os.path.exists("/proc/locks"):
        return None
    holders = set(flock_holders(os.path.realpath(store) + ".jobrun/leader.lock"))
    return [p for p in procs if p.pid in holders]


class Reader(StoreDB):
    """The test's own connection to the store (a SQLite file or a PostgreSQL URL)."""


def proc_state(pid: int) -> str:
    """The kernel's state letter for a process (`T` when stopped)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def sigstop_outside_write(store: str, svc: ServiceProc, tries: int = 50) -> None:
    """SIGSTOP a service at a moment it holds no SQLite write lock (on PostgreSQL: none of
    its sessions is inside a transaction).

    A stopped process keeps its locks: stopped inside a `BEGIN IMMEDIATE`, it would block
    every other writer of the store (SQLite's, not jobrun's, behaviour); on PostgreSQL the
    rows its open transaction locked. So: stop, check, else continue it and try again."""
    if is_postgres(store):
        _sigstop_outside_transaction(store, svc, tries)
        return
    probe = apsw.Connection(store)
    probe.set_busy_timeout(300)
    try:
        for _ in range(tries):
            os.kill(svc.pid, signal.SIGSTOP)
            wait_for(lambda: proc_state(svc.pid) == "T", 5, "the process to stop")
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
                return
            except apsw.BusyError:
                os.kill(svc.pid, signal.SIGCONT)
                time.sleep(0.05)  # let it finish its transaction before the next try
        raise AssertionError("could not stop the service outside a write transaction")
    finally:
        probe.close()


def _sigstop_outside_transaction(store: str, svc: ServiceProc, tries: int) -> None:
    db = StoreDB(store)
    try:
        for _ in range(tries):
            os.kill(svc.pid, signal.SIGSTOP)
            wait_for(lambda: proc_state(svc.pid) == "T", 5, "the process to stop")
            if not db.in_transaction(client_ports(svc.pid)):
                return
            os.kill(svc.pid, signal.SIGCONT)
            time.sleep(0.05)  # let it finish its transaction before the next try
        raise AssertionError("could not stop the service outside a transaction")
    finally:
        db.close()
