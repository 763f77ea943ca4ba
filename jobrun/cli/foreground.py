"""`jobrun start`'s body: the service in the foreground (signals, reload, drain, the demo).

No typer here: a plain `jobrun start` command line runs it straight from `fast.py`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

from .out import EX_OK, EX_USAGE, echo, fail, held_signals

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _check_log_flags(log_format: str | None, log_level: str | None) -> None:
    """Bad --log-format / --log-level values are usage errors (exit 2), before anything."""
    if log_format is not None and log_format not in LOG_FORMATS:
        fail(f"--log-format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}",
             EX_USAGE)
    if log_level is not None and log_level.upper() not in LOG_LEVELS:
        fail(f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}",
             EX_USAGE)


def start(config: str | None, store: str | None, demo: bool, log_format: str | None,
          log_level: str | None) -> None:
    """Run the service until SIGTERM or Ctrl-C, then drain and exit."""
    _check_log_flags(log_format, log_level)
    demo_dir: list[str] = []  # the demo's throwaway store folder, removed on the way out
    try:
        _start(config, store, demo, log_format, log_level, demo_dir)
    finally:
        _remove(demo_dir)


def _remove(folders: list[str]) -> None:
    import shutil

    for d in folders:
        shutil.rmtree(d, ignore_errors=True)


def _start(config: str | None, store: str | None, demo: bool, log_format: str | None,
           log_level: str | None, demo_dir: list[str]) -> None:
    stop = threading.Event()
    signals = {"n": 0}

    def on_signal(signum: int, _frame: Any) -> None:
        signals["n"] += 1
        if signals["n"] > 1 and signum == signal.SIGINT:
            _remove(demo_dir)
            os._exit(130)  # a second Ctrl-C: now; the jobs in flight are rescued later
        stop.set()

    hup: dict[str, Any] = {"reloader": None, "pending": False}

    def on_hup(_signum: int, _frame: Any) -> None:
        r = hup["reloader"]
        if r is None:
            hup["pending"] = True  # still starting (or no config): reload once it can
            return
        threading.Thread(target=r.reload, args=("SIGHUP",), daemon=True).start()

    # Before anything slow: a SIGTERM while starting still means "drain and exit 0", and a
    # SIGHUP never kills the service.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hup)
    for s in held_signals():  # came while the command was importing
        (on_hup if s == signal.SIGHUP else on_signal)(s, None)
    from ..ops.logs import setup_logging
    from ..ops.systemd import Notifier
    from ..runtime import check_tasks, import_tasks, resolve
    from ..service import Service

    setup_logging(log_format or "text", log_level or "INFO")
    if demo and not store:
        import tempfile

        demo_dir.append(tempfile.mkdtemp(prefix="jobrun-demo-"))
        store = os.path.join(demo_dir[0], "jobs.db")
    rt = resolve(config, store, demo=demo)
    setup_logging(log_format or rt.settings.log_format, log_level or rt.settings.log_level)
    import_tasks(rt.settings)
    problems = check_tasks(rt.settings)
    if problems:
        raise problems[0]
    service = Service(rt.store, rt.settings)
    service.start()
    notifier = Notifier()
    notifier.ready(service.status_line())
    notifier.start_pings(service.healthy, service.status_line)
    reloader = None
    if rt.config and not demo:
        from ..ops.reload import Reloader

        reloader = Reloader(service, rt.config, notifier)
        reloader.start()
        hup["reloader"] = reloader
        if hup["pending"]:
            threading.Thread(target=reloader.reload, args=("SIGHUP",), daemon=True).start()
    elif not demo:
        logging.getLogger("jobrun").info("no --config: SIGHUP has nothing to reload")
    if demo:
        _run_demo(stop)
    while not stop.wait(0.5):
        pass
    notifier.stopping()
    if reloader is not None:
        reloader.stop()
    service.stop(service.settings.shutdown_timeout)
    notifier.close()
    _remove(demo_dir)
    # Drained and recorded: exit now, even if a task left a thread of its own running.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EX_OK)


def _run_demo(stop: threading.Event) -> None:
    from ..demo.tasks import enqueue_demo_jobs

    jobs = enqueue_demo_jobs()
    echo(f"demo: enqueued {len(jobs)} jobs; watching them (Ctrl-C to stop)", err=True)

    def watch() -> None:
        seen: dict[int, str] = {}
        while not stop.wait(0.2):
            for j in jobs:
                state = j.refresh().state.value
                if seen.get(j.id) != state:
                    seen[j.id] = state
                    echo(f"demo: job {j.id} {j.record.task} -> {state} "
                               f"(attempt {j.attempts})", err=True)
            if all(s in ("succeeded", "dead", "cancelled") for s in seen.values()) \
                    and len(seen) == len(jobs):
                echo("demo: all demo jobs finished; the service keeps running "
                           "(Ctrl-C to stop)", err=True)
                return

    threading.Thread(target=watch, daemon=True, name="jobrun-demo").start()
