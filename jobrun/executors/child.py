"""The process child's side: its own process group, the task modules, then the jobs of
each batch one at a time, each started only if its slot did not take it back (gate.py),
a held one logged as begun first (began.py), and whatever a job started stopped before its
outcome is sent (groups.py). It dies with the service, even a SIGKILLed one.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from .. import began
from ..attempt import after_failure
from ..errors import ImportFailed
from ..model import Claim
from . import groups
from .gate import Gate

ACK = b"A"


def _die_with(service_pid: int) -> None:
    """Kill this child's whole process group when the service dies (even by SIGKILL): its
    job is rescued and run again elsewhere, so nothing of this attempt may go on. Its
    children that left the group (their own session) go first: they are found as children
    of this subreaper, and would be reparented to init once it is gone."""
    import select
    import threading

    def watch() -> None:
        try:
            fd = os.pidfd_open(service_pid)
            select.select([fd], [], [])  # readable once the service has exited
        except (AttributeError, OSError):
            while True:  # no pidfd: poll
                try:
                    os.kill(service_pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.5)
        groups.kill_children(0.0)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="jobrun-child-watchdog").start()


def child_main(conn: Connection, imports: list[str], path: list[str], store: str,
                service_pid: int = 0, gate_path: str | None = None,
                began_path: str | None = None) -> None:
    """The child: its own process group, the task modules, then one job at a time."""
    import importlib

    from ..attempt import run_attempt
    from ..registry import REGISTRY

    os.setsid()
    groups.become_subreaper()
    # Started as a daemon so it dies with the service; but a task may use multiprocessing
    # itself (a daemon may not have children): what it starts is stopped after its job.
    multiprocessing.current_process().daemon = False
    if service_pid:
        _die_with(service_pid)
    if store:
        os.environ["JOBRUN_STORE"] = store  # jobrun.once() and App() in tasks find the store
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the service's to handle
    for p in reversed(path):
        if p not in sys.path:
            sys.path.insert(0, p)
    failed: dict[str, str] = {}  # task modules that would not import here, and why
    for name in imports:
        try:
            importlib.import_module(name)
        except Exception as exc:  # its jobs fail with ImportFailed (retried); said here too
            failed[name] = f"{type(exc).__name__}: {exc}"
            print(f"jobrun child: cannot import {name}: {exc}", file=sys.stderr)
    gate = Gate(gate_path) if gate_path else None
    if gate is not None:
        gate.unlink()  # both ends have it open now: nothing is left behind
    skip: set[int] = set()
    inbox: list[dict[str, Any]] = []  # a next batch read while skipping taken-back jobs
    while True:
        try:
            msg = inbox.pop(0) if inbox else json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if "skip" in msg:
            skip.update(msg["skip"])
            continue
        conn.send_bytes(ACK)  # received: from now on a death is the running job's
        for d in msg["jobs"]:
            while conn.poll(0):  # the parent may cancel jobs of this batch not started yet
                m = json.loads(conn.recv_bytes())
                if "skip" in m:
                    skip.update(m["skip"])
                else:
                    inbox.append(m)
            seq = d.pop("seq", None)
            if d["token"] in skip:
                skip.discard(d["token"])
                conn.send_bytes(json.dumps({"token": d["token"], "state": "skipped"}).encode())
                continue
            if gate is not None and seq is not None and not gate.may_start(seq):
                continue  # taken back: another child runs it, and nothing is sent for it
            claim = Claim(**d)
            if claim.held and began_path:  # before it runs: its rescue must know
                began.append(began_path, claim.token)
            if failed and REGISTRY.find(claim.task) is None:  # its module failed here
                o = after_failure(claim, ImportFailed(
                    f"task {claim.task} is not in this worker process: " + "; ".join(
                        f"import {m} failed: {why}" for m, why in failed.items())[:800]),
                    time.time())
            else:
                o = run_attempt(claim, REGISTRY, log_it=False)
            groups.kill_children()  # nothing the job started outlives it
            conn.send_bytes(json.dumps({"token": claim.token, "state": o.state,
                                        "result": o.result, "run_at": o.run_at,
                                        "error": o.error}).encode())
