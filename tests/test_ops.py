"""The operator surface: JSON logs, trace ids, metrics, alerts, explain, retention."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import jobrun
import jobrun.testing
from conftest import JOBRUN, ROOT, run_cli, wait_for
from jobrun.ops.alerts import breaches
from jobrun.ops.explain import Facts, reasons
from jobrun.worker.maintenance.alerting import Alerter


def config(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "jobrun.toml"
    cfg.write_text('[jobrun]\nstore = "jobs.db"\nimport = ["opsapp.tasks"]\n'
                   f'shutdown_timeout = 2\n{extra}\n')
    return cfg


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "tests")}


def test_json_logs_carry_job_fields_and_the_trace_id(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    e = env()
    run_cli("enqueue", "opsapp.tasks:ok", "[1]", "--config", str(cfg), env={"PYTHONPATH": e["PYTHONPATH"]})
    app = jobrun.App.from_config(str(cfg))
    app.enqueue("opsapp.tasks:fails", args=[2], trace_id="req-77")
    p = subprocess.Popen([*JOBRUN, "start", "--config", str(cfg), "--log-format", "json"],
                         env=e, stderr=subprocess.PIPE, text=True)
    lines: list[dict[str, object]] = []
    try:
        assert p.stderr is not None

        def dead_seen() -> bool:
            line = p.stderr.readline()  # type: ignore[union-attr]
            if line.strip():
                lines.append(json.loads(line))  # every line is JSON
            return any(x.get("event") == "dead" for x in lines)
        wait_for(dead_seen, 20, "the dead event")
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()
    events = [(x.get("event"), x.get("job_id")) for x in lines if x.get("job_id")]
    assert ("started", 1) in events and ("succeeded", 1) in events
    assert ("retrying", 2) in events and ("dead", 2) in events
    done = next(x for x in lines if x.get("event") == "succeeded")
    for field in ("job_id", "task", "queue", "attempt", "duration", "trace_id"):
        assert field in done, field
    assert "args" not in done  # not unless log_args = true
    for x in lines:
        if x.get("job_id") == 2:
            assert x["trace_id"] == "req-77"
    retry = next(x for x in lines if x.get("event") == "retrying")
    assert retry["retry_in"] is not None and "ValueError: bad 2" in str(retry["error"])
    rec = app.job(2).record
    assert "Traceback" in rec.errors[0]["traceback"]


def test_trace_id_from_opentelemetry_then_caller_then_new(app: jobrun.App) -> None:
    pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from opsapp import tasks

    trace.set_tracer_provider(TracerProvider())
    with trace.get_tracer("t").start_as_current_span("request") as span:
        j1 = app.enqueue(tasks.whose_trace.name)
        expected = f"{span.get_span_context().trace_id:032x}"
    j2 = app.enqueue(tasks.whose_trace.name, trace_id="abc")
    j3 = app.enqueue(tasks.whose_trace.name)
    jobrun.testing.run_until_idle(app)
    assert j1.result() == expected and j2.result() == "abc"
    assert isinstance(j3.result(), str) and len(j3.result()) == 32


def test_metrics_endpoint(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = config(tmp_path, f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
    app = jobrun.App.from_config(str(cfg))
    for i in range(3):
        app.enqueue("opsapp.tasks:ok", args=[i])
    app.enqueue("opsapp.tasks:ok", args=[9], delay=3600)
    log = open(tmp_path / "service.log", "w")
    p = subprocess.Popen([*JOBRUN, "start", "--config", str(cfg)], env=env(), stderr=log)
    try:
        def scrape() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    body: str = r.read().decode()
                    return body if 'outcome="succeeded"' in body else ""
            except OSError:
                return ""
        body = str(wait_for(scrape, 20, "the metrics endpoint"))
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=20)
    assert 'jobrun_queue_jobs{queue="default",state="scheduled"} 1.0' in body
    assert 'jobrun_jobs_total{outcome="succeeded",queue="default",task="opsapp.tasks:ok"} 3.0' \
        in body
    assert 'jobrun_job_duration_seconds_count{task="opsapp.tasks:ok"} 3.0' in body
    assert "jobrun_oldest_queued_age_seconds" in body


def test_alerts_fire_once_per_breach_and_run_the_command(tmp_path: Path) -> None:
    out = tmp_path / "alert.txt"
    cmd = [sys.executable, "-c", "import os,sys; open(sys.argv[1], 'a').write("
           "os.environ['JOBRUN_ALERT'] + ' ' + os.environ['JOBRUN_QUEUE'] + '\\n')", str(out)]
    alerts = {"dead_per_hour": 1, "oldest_queued_age": "5m", "on_alert": cmd}
    stats = {"default": {"oldest_queued_age": 10.0, "dead_last_hour": 3},
             "mail": {"oldest_queued_age": 900.0, "dead_last_hour": 0}}
    assert {(b.name, b.queue) for b in breaches(alerts, stats)} == {
        ("dead_per_hour", "default"), ("oldest_queued_age", "mail")}
    a = Alerter()
    assert len(a.update(alerts, stats)) == 2
    assert a.update(alerts, stats) == []  # still breached: no second warning
    stats["mail"]["oldest_queued_age"] = 1.0
    assert a.update(alerts, stats) == []  # cleared
    stats["mail"]["oldest_queued_age"] = 600.0
    assert len(a.update(alerts, stats)) == 1  # a new breach
    wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 3, 10, "on_alert")
    assert "oldest_queued_age mail" in out.read_text()


def test_explain_names_what_holds_a_job_back(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    e = {"PYTHONPATH": env()["PYTHONPATH"]}
    run_cli("enqueue", "opsapp.tasks:ok", "[1]", "--config", str(cfg), env=e)
    run_cli("pause", "default", "--config", str(cfg), env=e)
    r = run_cli("explain", "1", "--config", str(cfg), env=e)
    assert r.returncode == 0 and "paused" in r.stdout and "no live service" in r.stdout
    data = json.loads(run_cli("explain", "1", "--json", "--config", str(cfg), env=e).stdout)
    assert data["state"] == "queued" and any("paused" in x for x in data["reasons"])
    run_cli("enqueue", "opsapp.tasks:ok", "[2]", "--delay", "60", "--config", str(cfg), env=e)
    assert "waiting for its time" in run_cli("explain", "2", "--config", str(cfg), env=e).stdout
    assert run_cli("explain", "99", "--config", str(cfg), env=e).returncode == 1


def test_explain_reasons_for_limits() -> None:
    from jobrun.model import JobRecord, JobState

    rec = JobRecord(5, "t:f", "q", [], {}, 0, JobState.QUEUED, 0, 3, 0.0)
    facts = Facts(servers=["h"], running_in_queue=4, cap=4, ahead=2, key_running=1, key_limit=1,
                  rates=[("task:t:f", 12.0)])
    text = "\n".join(reasons(rec, facts, now=1.0))
    assert "at its concurrency cap (4/4 running)" in text
    assert "concurrency key has 1 running (limit 1)" in text
    assert "rate limit task:t:f is spent" in text and "2 job(s)" in text
    assert "nothing holds it back" in reasons(rec, Facts(servers=["h"]), now=1.0)[-1]


def test_retention_prunes_finished_jobs_in_the_service(app: jobrun.App) -> None:
    from opsapp import tasks

    jobs = [app.enqueue(tasks.ok.name, args=[i]) for i in range(5)]
    jobrun.testing.run_until_idle(app)
    app.store.connection().execute("UPDATE jobs SET finished_at = finished_at - 8 * 86400 "
                                   "WHERE id <= 3")
    from jobrun.service import Service
    from jobrun.worker.maintenance import prune

    svc = Service(app.store_path, app.settings)
    prune.prune(svc._maint.view, jobrun.clock.now())
    svc.store.close()
    left = [r[0] for r in app.store.read("SELECT id FROM jobs ORDER BY id")]
    assert left == [jobs[3].id, jobs[4].id]
