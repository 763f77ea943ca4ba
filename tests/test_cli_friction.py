"""What a new user tripped over (issue 10): stores made by typos, queues made by typos, a
broken config stopping every command, exit codes, --json everywhere, the display widths."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import JOBRUN, ROOT, run_cli, wait_for

READERS = [["ls"], ["show", "1"], ["stats"], ["explain", "1"], ["top", "--once"],
           ["retry", "1"], ["cancel", "1"], ["prune", "--older-than", "1d"],
           ["pause", "default"], ["resume", "default"]]


@pytest.mark.parametrize("args", READERS, ids=lambda a: a[0])
def test_operator_commands_never_create_a_store(tmp_path: Path, args: list[str]) -> None:
    typo = tmp_path / "jbos.db"
    r = run_cli(*args, "--store", str(typo))
    assert r.returncode == 1, r.stderr
    assert str(typo) in r.stderr and "does not exist" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""
    assert sorted(os.listdir(tmp_path)) == []  # no file, no -wal, no .jobrun folder


def test_cron_ls_never_creates_a_store(tmp_path: Path) -> None:
    cfg = tmp_path / "jobrun.toml"
    cfg.write_text('[[cron]]\nname = "n"\nevery = "1m"\ncommand = ["true"]\n')
    r = run_cli("cron", "ls", "--config", str(cfg), "--store", str(tmp_path / "jbos.db"))
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path)) == ["jobrun.toml"]


def test_pause_refuses_a_queue_nobody_knows(tmp_path: Path) -> None:
    from jobrun.lock import HolderLock

    store = str(tmp_path / "jobs.db")
    assert run_cli("enqueue", "a:b", "--store", store).returncode == 0
    r = run_cli("pause", "defualt", "--store", store)
    assert r.returncode == 1 and "defualt" in r.stderr and "'default'" in r.stderr
    assert "--force" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    stats = json.loads(run_cli("stats", "--json", "--store", store).stdout)["queues"]
    assert "defualt" not in stats
    # --force pauses it anyway; then it has a row, so it is known from then on.
    assert run_cli("pause", "defualt", "--force", "--store", store).returncode == 0
    assert run_cli("resume", "defualt", "--store", store).returncode == 0
    # Declared by the config:
    cfg = tmp_path / "jobrun.toml"
    cfg.write_text("[queues.emails]\nconcurrency = 2\n")
    assert run_cli("pause", "emails", "--store", store).returncode == 1
    assert run_cli("pause", "emails", "--store", store, "--config", str(cfg)).returncode == 0
    # Served by a live service (its holder lock says so):
    assert run_cli("pause", "reports", "--store", store).returncode == 1
    lock = HolderLock(os.path.realpath(store), "h-test", info={"queues": {"reports": 2}})
    assert lock.acquire()
    try:
        assert run_cli("pause", "reports", "--store", store).returncode == 0
    finally:
        lock.release(unlink=True)
    r = run_cli("resume", "nope", "--store", store)
    assert r.returncode == 1 and "nope" in r.stderr


def test_known_queues_in_one_place(tmp_path: Path) -> None:
    from jobrun.config import load
    from jobrun.queues import known_queues
    from jobrun.store.sqlite import SqliteStore

    cfg = tmp_path / "jobrun.toml"
    cfg.write_text("[queues.mail]\nconcurrency = 2\n")
    s = SqliteStore(tmp_path / "jobs.db")
    s.set_paused("old", True)
    assert known_queues(s, load(str(cfg))) == {"default", "mail", "old"}
    s.close()


BROKEN = '[jobrun]\nshutdown_timeout = "soon"\n'


def test_a_broken_config_does_not_stop_operator_commands(tmp_path: Path) -> None:
    store = str(tmp_path / "jobs.db")
    assert run_cli("enqueue", "a:b", "--store", store).returncode == 0
    cfg = tmp_path / "jobrun.toml"
    cfg.write_text(BROKEN)
    env = {"JOBRUN_CONFIG": str(cfg)}
    for args in (["ls"], ["show", "1"], ["stats"], ["explain", "1"], ["top", "--once"],
                 ["pause", "default"], ["resume", "default"], ["cancel", "1"], ["retry", "1"],
                 ["prune", "--older-than", "1d"]):
        r = run_cli(*args, "--store", store, env=env)
        assert r.returncode == 0, (args, r.stderr)
        warn = r.stderr.strip().splitlines()
        assert len(warn) == 1 and f"{cfg}:2" in warn[0] and "shutdown_timeout" in warn[0], args
    assert run_cli("ls", "--json", "--store", store, "--config", str(cfg)).returncode == 0
    # Without an explicit store the config decides where the store is: still 78.
    assert run_cli("ls", env=env).returncode == 78
    # These need the config itself.
    for args in (["enqueue", "a:b"], ["cron", "ls"], ["check"]):
        assert run_cli(*args, "--store", store, env=env).returncode == 78, args
    r = run_cli("start", "--store", store, env=env)
    assert r.returncode == 78


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    store = tmp_path / "jobs.db"
    r = run_cli("start", "--log-format", "xml", "--store", str(store))
    assert r.returncode == 2 and "xml" in r.stderr
    r = run_cli("start", "--log-level", "LOUD", "--store", str(store))
    assert r.returncode == 2 and "LOUD" in r.stderr
    assert not store.exists()


def test_debug_works_anywhere(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_text("hello" * 200)
    for args in (["--debug", "ls", "--store", str(garbage)],
                 ["ls", "--debug", "--store", str(garbage)],
                 ["ls", "--store", str(garbage), "--debug"]):
        r = run_cli(*args)
        assert r.returncode == 1 and "Traceback" in r.stderr, (args, r.stderr)
    r = run_cli("ls", "--store", str(garbage))
    assert r.returncode == 1 and "Traceback" not in r.stderr


def test_json_on_every_command_that_prints(tmp_path: Path) -> None:
    store = str(tmp_path / "jobs.db")
    s = ["--store", store]

    def js(*args: str, code: int = 0) -> object:
        r = run_cli(*args, "--json", *s, cwd=str(tmp_path))
        assert r.returncode == code, (args, r.stderr)
        return json.loads(r.stdout)

    assert js("enqueue", "a:b", "[1]") == {"id": 1}
    jobs = tmp_path / "jobs.toml"
    jobs.write_text('[[job]]\ntask = "a:b"\n\n[[job]]\ntask = "a:c"\n')
    assert js("enqueue", "--file", str(jobs)) == {"ids": [2, 3]}
    assert js("cancel", "1") == {"id": 1, "previous": "queued", "state": "cancelled"}
    assert js("retry", "1") == {"ids": [1]}
    assert js("retry", "--dead") == {"ids": []}
    assert js("pause", "default") == {"queue": "default", "paused": True}
    assert js("resume", "default") == {"queue": "default", "paused": False}
    assert js("prune", "--older-than", "7d") == {"pruned": 0}
    out = js("init")
    assert out == {"path": str(tmp_path / "jobrun.toml")}
    cfg = str(tmp_path / "jobrun.toml")
    assert js("check", "--config", cfg) == {"ok": True, "file": cfg, "problems": []}
    bad = tmp_path / "bad.toml"
    bad.write_text(BROKEN)
    out = js("check", "--config", str(bad), code=78)
    assert isinstance(out, dict) and out["ok"] is False
    assert out["problems"][0]["line"] == 2 and out["problems"][0]["file"] == str(bad)


def test_enqueue_file_errors_name_the_file_not_the_config(tmp_path: Path) -> None:
    store = str(tmp_path / "jobs.db")
    missing = tmp_path / "nope.toml"
    r = run_cli("enqueue", "--file", str(missing), "--store", store)
    assert r.returncode == 1 and str(missing) in r.stderr
    bad = tmp_path / "jobs.toml"
    bad.write_text('[[job]]\ntask = "a:b"\n\n[[job]]\nargs = [1]\n')
    r = run_cli("enqueue", "--file", str(bad), "--store", store)
    assert r.returncode == 1 and f"{bad}:4" in r.stderr and "[[job]] #2" in r.stderr
    bad.write_text('[[job]]\ntask = "a:b"\npriority = "high"\n')
    r = run_cli("enqueue", "--file", str(bad), "--store", store)
    assert r.returncode == 1 and f"{bad}:1" in r.stderr and "priority" in r.stderr
    bad.write_text('[[job]\ntask = "a:b"\n')
    r = run_cli("enqueue", "--file", str(bad), "--store", store)
    assert r.returncode == 1 and str(bad) in r.stderr and "line 1" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_store_errors_are_one_line(tmp_path: Path) -> None:
    r = run_cli("ls", "--store", str(tmp_path))
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def _lines(text: str) -> list[str]:
    return [ln.rstrip() for ln in text.splitlines()]


def test_stats_fits_80_columns_with_readable_headers(tmp_path: Path) -> None:
    store = str(tmp_path / "jobs.db")
    run_cli("enqueue", "a:b", "--queue", "notifications-eu", "--store", store)
    r = run_cli("stats", "--store", store, env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    lines = _lines(r.stdout)
    assert all(len(ln) <= 80 for ln in lines), lines
    head = lines[0].split()
    assert "…" not in lines[0] and {"queue", "queued", "running", "dead"} <= set(head), head
    assert "notifications-eu" in r.stdout
    narrow = run_cli("stats", "--store", store, env={"COLUMNS": "50"})
    assert all(len(ln) <= 50 for ln in _lines(narrow.stdout)), narrow.stdout
    assert "notifications-eu" in narrow.stdout and "…" not in _lines(narrow.stdout)[0]


def test_cron_ls_never_wraps_names(tmp_path: Path) -> None:
    cfg = tmp_path / "jobrun.toml"
    cfg.write_text('[[cron]]\nname = "nightly-accounting-report"\nschedule = "0 2 * * *"\n'
                   'timezone = "Europe/Berlin"\n'
                   'task = "myapp.reports.accounting:build_the_nightly_report"\n')
    r = run_cli("cron", "ls", "--config", str(cfg), env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    lines = _lines(r.stdout)
    assert all(len(ln) <= 80 for ln in lines), lines
    assert any("nightly-accounting-report" in ln for ln in lines), lines
    assert any("2026" in ln or "20" in ln for ln in lines)


def test_top_keeps_queue_names_when_narrow(tmp_path: Path) -> None:
    store = str(tmp_path / "jobs.db")
    for q in ("notifications", "reports"):
        run_cli("enqueue", "a:b", "--queue", q, "--store", store)
    for width in (79, 60, 50):
        r = run_cli("top", "--once", "--store", store, env={"COLUMNS": str(width),
                                                            "LINES": "30"})
        assert r.returncode == 0, r.stderr
        assert "notifications" in r.stdout and "reports" in r.stdout, (width, r.stdout)
        assert all(len(ln) <= width for ln in _lines(r.stdout))


def test_reload_keeps_the_uptime(tmp_path: Path) -> None:
    from jobrun.config import Settings
    from jobrun.lock import holder_info
    from jobrun.service import Service

    svc = Service(str(tmp_path / "jobs.db"), Settings())
    svc.start()
    try:
        started = holder_info(svc.path, svc.holder).get("started")
        assert started
        svc.apply(Settings())
        assert holder_info(svc.path, svc.holder).get("started") == started
    finally:
        svc.stop(5)


def test_demo_leaves_no_temp_folder(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    p = subprocess.Popen([*JOBRUN, "start", "--demo"], stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "TMPDIR": str(tmp)})
    try:
        assert p.stderr is not None

        def finished() -> bool:
            line = p.stderr.readline()  # type: ignore[union-attr]
            return "all demo jobs finished" in line or not line
        wait_for(finished, timeout=30, what="the demo jobs")
        assert [n for n in os.listdir(tmp) if n.startswith("jobrun-demo-")]
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()
    assert os.listdir(tmp) == []


def test_explain_says_the_queue_needs_a_table_when_a_service_runs(tmp_path: Path) -> None:
    from jobrun.lock import HolderLock

    store = str(tmp_path / "jobs.db")
    run_cli("enqueue", "a:b", "--queue", "emails", "--store", store)
    r = run_cli("explain", "1", "--store", store)
    assert "no live service serves queue 'emails' (start one: jobrun start)" in r.stdout
    lock = HolderLock(os.path.realpath(store), "h-test", info={"queues": {"default": 4}})
    assert lock.acquire()
    try:
        r = run_cli("explain", "1", "--store", store)
    finally:
        lock.release(unlink=True)
    assert r.returncode == 0, r.stderr
    assert "[queues.emails]" in r.stdout and "start one" not in r.stdout


def test_init_writes_the_top_level_example(tmp_path: Path) -> None:
    example = ROOT / "jobrun.toml.example"
    assert example.is_file() and not example.is_symlink()
    packaged = ROOT / "jobrun" / "jobrun.toml.example"
    assert packaged.is_symlink() and packaged.resolve() == example.resolve()
    r = run_cli("init", "mine.toml", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "mine.toml").read_bytes() == example.read_bytes()


def test_cron_ls_from_is_exclusive_and_naive_means_utc(tmp_path: Path) -> None:
    cfg = tmp_path / "jobrun.toml"
    cfg.write_text('[[cron]]\nname = "n"\nschedule = "0 2 * * *"\ncommand = ["true"]\n')
    r = run_cli("cron", "ls", "--config", str(cfg), "--from", "2026-03-07T02:00:00",
                "--count", "1", "--json")
    assert json.loads(r.stdout)[0]["next"] == ["2026-03-08T02:00:00Z"]


def test_enqueue_does_not_fail_after_its_commit_when_it_cannot_ring(tmp_path: Path) -> None:
    """A producer of another user cannot list the service's 0700 holders folder: the job is
    committed, so enqueue must not then fail (a retry would enqueue twice); the poll finds it."""
    store = tmp_path / "jobs.db"
    assert run_cli("enqueue", "a:b", "--store", str(store)).returncode == 0
    (tmp_path / "jobs.db.jobrun").mkdir(exist_ok=True)
    (tmp_path / "jobs.db.jobrun" / "holders").write_text("not a folder")  # listdir fails
    r = run_cli("enqueue", "a:b", "--json", "--store", str(store))
    assert r.returncode == 0 and json.loads(r.stdout) == {"id": 2}, r.stderr
