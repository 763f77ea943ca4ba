"""The real `jobrun` command against real stores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import JOBRUN, run_cli, wait_for
from jobrun import clock
from jobrun.model import Outcome
from jobrun.store import open_store
from support.postgres import any_store


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The command against both stores: a SQLite file, a PostgreSQL schema of its own."""
    with any_store(request.param, str(tmp_path)) as where:
        yield where


def test_enqueue_ls_show_json(tmp_path: Path, location: str) -> None:
    env = {"JOBRUN_STORE": location}
    r = run_cli("enqueue", "myapp.mail:send", "[42]", "--key", "k1", "--priority", "3", env=env)
    assert r.returncode == 0, r.stderr
    job_id = int(r.stdout.strip())
    r = run_cli("enqueue", "myapp.mail:send", "[42]", "--key", "k1", env=env)
    assert int(r.stdout) == job_id  # de-duplicated
    r = run_cli("enqueue", "other:t", "--kwargs", '{"a": 1}', "--delay", "60", env=env)
    other = int(r.stdout)  # not always 2: a PostgreSQL sequence skips the de-duplicated one
    listed = json.loads(run_cli("ls", "--json", env=env).stdout)
    assert [j["id"] for j in listed] == [other, job_id] and other > job_id
    assert listed[1]["key"] == "k1" and listed[1]["priority"] == 3
    assert listed[0]["state"] == "scheduled"
    for field in ("id", "task", "queue", "state", "attempts", "priority", "key", "run_at"):
        assert field in listed[0]
    assert listed[0]["run_at"].endswith("Z")
    shown = json.loads(run_cli("show", str(job_id), "--json", env=env).stdout)
    assert shown["result"] is None and shown["errors"] == [] and shown["args"] == [42]
    only = json.loads(run_cli("ls", "--state", "scheduled", "--json", env=env).stdout)
    assert [j["id"] for j in only] == [other]


def test_store_flag_and_exit_codes(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    assert run_cli("enqueue", "a:b", "--store", store).returncode == 0
    r = run_cli("show", "99", "--store", store)
    assert r.returncode == 1 and "no job 99" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("ls", "--state", "nope", "--store", store)
    assert r.returncode == 2
    r = run_cli("enqueue", "a:b", "[nope", "--store", store)
    assert r.returncode == 2 and "not JSON" in r.stderr
    r = run_cli("enqueue", "a:b", "[Infinity]", "--store", store)  # a typo like "[nope"
    assert r.returncode == 2 and "Infinity is not JSON" in r.stderr
    r = run_cli("bogus-command")
    assert r.returncode == 2
    garbage = tmp_path / "garbage.db"
    garbage.write_text("hello" * 100)
    r = run_cli("ls", "--store", str(garbage))
    assert r.returncode == 1 and "not a SQLite database" in r.stderr and "Traceback" not in r.stderr


def test_retry_cancel_prune_pause_stats(tmp_path: Path, location: str) -> None:
    env = {"JOBRUN_STORE": location}
    for _ in range(3):
        run_cli("enqueue", "nobody:home", env=env)
    r = run_cli("cancel", "1", env=env)
    assert r.returncode == 0
    assert run_cli("cancel", "1", env=env).returncode == 1
    assert run_cli("retry", "1", env=env).returncode == 0
    assert run_cli("retry", "2", env=env).returncode == 1  # queued: nothing to retry
    assert run_cli("pause", "default", env=env).returncode == 0
    stats = json.loads(run_cli("stats", "--json", env=env).stdout)
    q = stats["queues"]["default"]
    assert q["queued"] == 3 and q["paused"] is True and q["oldest_queued_age"] >= 0
    assert run_cli("resume", "default", env=env).returncode == 0
    assert run_cli("prune", "--older-than", "7d", env=env).stdout.strip() == "pruned 0 job(s)"
    assert run_cli("prune", "--older-than", "soon", env=env).returncode == 2
    assert run_cli("prune", env=env).returncode == 2  # neither --older-than nor --id
    assert run_cli("cancel", "2", env=env).returncode == 0
    assert run_cli("prune", "--id", "2", env=env).stdout.strip() == "pruned job 2"
    r = run_cli("prune", "--id", "3", env=env)  # queued, and the newest: refused
    assert r.returncode == 1 and "not pruned" in r.stderr
    assert run_cli("show", "2", env=env).returncode == 1


def test_retry_of_a_job_cancelled_while_it_ran_waits_for_that_attempt(location: str) -> None:
    """The cancelled attempt may still run (cancel only asks it to stop): `retry` refuses,
    saying where it runs, until the attempt has ended."""
    env = {"JOBRUN_STORE": location}
    assert run_cli("enqueue", "nobody:home", env=env).returncode == 0
    store = open_store(location)
    try:
        (claim,) = store.acquire_round([], {"default": 1}, "elsewhere", now=clock.now(),
                                       lease=60).claims
        assert run_cli("cancel", str(claim.id), env=env).returncode == 0
        r = run_cli("retry", str(claim.id), env=env)
        assert r.returncode == 1 and "still runs on elsewhere" in r.stderr, r.stderr
        store.record([Outcome(claim.id, claim.token, "succeeded", result="1")],
                     now=clock.now())  # the attempt ended: fenced off, and let go
    finally:
        store.close()
    r = run_cli("retry", str(claim.id), env=env)
    assert r.returncode == 0 and "queued again" in r.stdout, (r.stdout, r.stderr)


def test_enqueue_file_is_one_transaction(tmp_path: Path, location: str) -> None:
    env = {"JOBRUN_STORE": location}
    good = tmp_path / "jobs.toml"
    good.write_text('[[job]]\ntask = "a:b"\nargs = [1]\n\n[[job]]\ntask = "a:c"\n'
                    'kwargs = {x = 2}\npriority = 4\n')
    r = run_cli("enqueue", "--file", str(good), env=env)
    assert r.returncode == 0 and r.stdout.split() == ["1", "2"]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[job]]\ntask = "a:b"\n\n[[job]]\ntask = "a:c"\ndelay = -5\n')
    r = run_cli("enqueue", "--file", str(bad), env=env)
    assert r.returncode == 1
    assert len(json.loads(run_cli("ls", "--json", env=env).stdout)) == 2


def test_init_and_check(tmp_path: Path) -> None:
    r = run_cli("init", cwd=str(tmp_path))
    assert r.returncode == 0 and (tmp_path / "jobrun.toml").exists()
    assert run_cli("init", cwd=str(tmp_path)).returncode == 1
    r = run_cli("check", "--config", str(tmp_path / "jobrun.toml"))
    assert r.returncode == 0, r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[jobrun]\nshutdown_timeout = "soon"\n\n[queues.default]\nconcurency = 4\n')
    r = run_cli("check", "--config", str(bad))
    assert r.returncode == 78
    assert f"{bad}:2: [jobrun.shutdown_timeout]" in r.stderr
    assert f"{bad}:5: [queues.default.concurency]: unknown key" in r.stderr


def test_start_with_bad_config_exits_78_before_touching_the_store(tmp_path: Path) -> None:
    cfg = tmp_path / "jobrun.toml"
    cfg.write_text('[jobrun]\nstore = "j.db"\nimport = ["no_such_module_xyz"]\n')
    r = run_cli("start", "--config", str(cfg))
    assert r.returncode == 78 and "no_such_module_xyz" in r.stderr
    assert not (tmp_path / "j.db").exists()
    cfg.write_text('[jobrun\n')
    r = run_cli("start", "--config", str(cfg))
    assert r.returncode == 78 and "line 1" in r.stderr


def test_demo_runs_and_drains_on_sigterm(tmp_path: Path) -> None:
    store = tmp_path / "demo.db"
    p = subprocess.Popen([*JOBRUN, "start", "--demo", "--store", str(store)],
                         stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        assert p.stderr is not None

        def finished() -> bool:
            line = p.stderr.readline()  # type: ignore[union-attr]
            lines.append(line)
            return "all demo jobs finished" in line or not line
        wait_for(finished, timeout=30, what="the demo jobs")
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()
    text = "".join(lines)
    assert "flaky -> succeeded (attempt 3)" in text and "refuse -> dead" in text
    jobs = json.loads(run_cli("ls", "--json", "--store", str(store)).stdout)
    assert sorted(j["state"] for j in jobs).count("succeeded") == 6


def test_start_serves_tasks_from_the_config_folder(tmp_path: Path, location: str) -> None:
    (tmp_path / "mytasks.py").write_text(
        "import jobrun\napp = jobrun.App()\n\n@app.task\ndef double(x):\n    return 2 * x\n")
    cfg = tmp_path / "jobrun.toml"
    store = "j.db" if location.endswith(".db") else location  # a file beside the config
    cfg.write_text(f'[jobrun]\nstore = {json.dumps(store)}\nimport = ["mytasks"]\n'
                   'app = "mytasks:app"\n')
    env = {"JOBRUN_CONFIG": str(cfg)}
    run_cli("enqueue", "mytasks:double", "[21]", env=env)
    p = subprocess.Popen([*JOBRUN, "start"], env={**os.environ, **env},
                         stderr=subprocess.DEVNULL, cwd="/")
    try:
        def done() -> bool:
            out = run_cli("show", "1", "--json", env=env).stdout
            return json.loads(out)["state"] == "succeeded"
        wait_for(done, timeout=20, what="job 1")
        assert json.loads(run_cli("show", "1", "--json", env=env).stdout)["result"] == 42
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()
    assert sys.executable
