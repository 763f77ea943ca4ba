"""A reload that adds a module to `import` while the process pool runs: the children learn
the new task set. Children started before the reload are replaced, idle ones at once, busy
ones after their current job, and no job is lost or run twice. A real `jobrun start` and a
real edit of its config file.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import jobrun
from crashapp.harness import Reader, ServiceProc, proc_state, wait_for, wait_serving
from execapp import reload_a, reload_b  # noqa: F401  (by-name enqueues get their queue)


def config_text(imports: list[str]) -> str:
    mods = ", ".join(f'"{m}"' for m in imports)
    return ("[jobrun]\n"
            'store = "jobs.db"\n'
            f"import = [{mods}]\n"
            "shutdown_timeout = 5\n"
            "\n"
            "[queues.rproc]\n"
            'executor = "process"\n'
            "concurrency = 2\n"
            "max_attempts = 1\n")


def alive(pid: int) -> bool:
    try:
        return proc_state(pid) not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_reload_adding_a_module_teaches_the_process_children_its_tasks(tmp_path: Path) -> None:
    cfg = tmp_path / "jobrun.toml"
    cfg.write_text(config_text(["execapp.reload_a"]), encoding="utf-8")
    store = str(tmp_path / "jobs.db")
    folder = str(tmp_path)
    svc = ServiceProc(str(cfg), tmp_path / "svc.log")
    app: jobrun.App | None = None
    db: Reader | None = None
    pids: list[int] = []
    try:
        wait_serving(store, svc)
        app = jobrun.App(store)
        db = Reader(store)
        # Given: one child busy with a gated job, the other idle after a job.
        busy = app.enqueue("execapp.reload_a:gated", args=[folder, "busy"])
        wait_for((tmp_path / "started-busy").exists, 15, "the busy job to start")
        busy_pid = int((tmp_path / "started-busy").read_text())
        idle_pid = app.enqueue("execapp.reload_a:a_pid").result(timeout=15)
        pids += [busy_pid, idle_pid]
        assert idle_pid != busy_pid

        # When: the config's `import` gains a module whose task runs on this process queue.
        with open(cfg, "w", encoding="utf-8") as f:
            f.write(config_text(["execapp.reload_a", "execapp.reload_b"]))
        wait_for(lambda: "config reloaded" in svc.log_text(), 5, "the reload")

        # Then: the idle child is replaced at once, and the new task runs.
        wait_for(lambda: not alive(idle_pid), 5, "the idle child to be replaced")
        b1 = app.enqueue("execapp.reload_b:b_pid")
        first_b = b1.result(timeout=15)
        pids.append(first_b)
        assert first_b not in (busy_pid, idle_pid)
        # The busy child finishes its job first, once, then goes.
        assert alive(busy_pid)
        (tmp_path / "gate-busy").touch()
        assert busy.result(timeout=15) == busy_pid
        wait_for(lambda: not alive(busy_pid), 5, "the busy child to be replaced after its job")
        # Both slots now run the new task set.
        more = [app.enqueue("execapp.reload_b:b_pid") for _ in range(4)]
        got = {j.result(timeout=15) for j in more}
        pids.extend(got)
        assert not got & {busy_pid, idle_pid}

        rows = db.all("SELECT task, state, attempts FROM jobs ORDER BY id")
        assert [r[1] for r in rows] == ["succeeded"] * len(rows), rows
        assert all(r[2] == 1 for r in rows), rows
        assert len(rows) == 7
        svc.send(signal.SIGTERM)
        assert svc.wait(20) == 0
    finally:
        (tmp_path / "gate-busy").touch()
        if app is not None:
            app.close()
        if db is not None:
            db.close()
        svc.kill()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
