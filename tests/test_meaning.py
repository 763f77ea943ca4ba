"""One meaning per job: keys per task, ids never reused, the task catalog, unknown tasks.

CONTRACT.md, "Python API" and "One meaning per job, however it is enqueued".
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import jobrun
import jobrun.testing
from conftest import run_cli, wait_for


def _module(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(body), encoding="utf-8")


# -- keys are per task ---------------------------------------------------------------------
def test_key_is_per_task(app: jobrun.App) -> None:
    @app.task
    def charge_card(order: int) -> str:
        return f"charged {order}"

    @app.task
    def send_receipt(order: int) -> str:
        return f"sent {order}"

    receipt = send_receipt.options(key="order-42").enqueue(42)
    charge = charge_card.options(key="order-42").enqueue(42)
    assert charge.id != receipt.id
    assert app.job(charge.id).record.task == charge_card.name
    again = charge_card.options(key="order-42").enqueue(42)
    assert again.id == charge.id  # the same task and key: de-duplicated
    jobrun.testing.run_until_idle(app)
    assert charge.result() == "charged 42" and receipt.result() == "sent 42"


def test_cli_key_is_per_task(tmp_path: Path) -> None:
    store = str(tmp_path / "jobs.db")
    a = run_cli("enqueue", "mod:a", "[1]", "--key", "k", "--store", store, "--allow-unknown")
    b = run_cli("enqueue", "mod:b", "[1]", "--key", "k", "--store", store, "--allow-unknown")
    assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)
    assert a.stdout.strip() != b.stdout.strip()


# -- ids are never reused ------------------------------------------------------------------
def test_ids_never_reused_after_prune(app: jobrun.App) -> None:
    @app.task
    def echo(x: int) -> int:
        return x

    old = [echo.enqueue(i) for i in range(3)]
    jobrun.testing.run_until_idle(app)
    assert app.store.prune(jobrun.clock.now() + 1) >= 2
    new = echo.enqueue(99)
    assert new.id > max(j.id for j in old)
    jobrun.testing.run_until_idle(app)
    for j in old:  # an old handle names the old job or nothing: never the new one's result
        try:
            assert j.result(timeout=0) == old.index(j)
        except jobrun.JobrunError as exc:
            assert "does not exist" in str(exc)
    assert new.result() == 99


def test_cli_prune_then_enqueue_gets_a_new_id(tmp_path: Path) -> None:
    store = str(tmp_path / "jobs.db")
    first = run_cli("enqueue", "mod:a", "--store", store, "--allow-unknown")
    assert first.returncode == 0, first.stderr
    app = jobrun.App(store)
    app.store.cancel(int(first.stdout), now=jobrun.clock.now())
    app.close()
    assert run_cli("prune", "--older-than", "0s", "--store", store).returncode == 0
    second = run_cli("enqueue", "mod:a", "--store", store, "--allow-unknown")
    assert int(second.stdout) > int(first.stdout)


# -- the catalog ---------------------------------------------------------------------------
def _service(folder: Path, config: str, log: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBRUN_")}
    return subprocess.Popen([sys.executable, "-m", "jobrun.cli", "start", "--config", config],
                            cwd=folder, env=env, stdout=open(folder / log, "wb"),
                            stderr=subprocess.STDOUT)


def _stop(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def _catalog_has(store: str, task: str) -> bool:
    import apsw

    if not os.path.exists(store):
        return False
    c = apsw.Connection(store)
    c.setbusytimeout(5000)  # the service may be creating the schema right now
    try:
        return bool(list(c.execute("SELECT 1 FROM sqlite_master WHERE name = 'catalog'"))) and \
            bool(list(c.execute("SELECT 1 FROM catalog WHERE task = ?", (task,))))
    finally:
        c.close()


@pytest.mark.slow
def test_services_with_different_task_sets_share_a_store(tmp_path: Path) -> None:
    """Two projects on one store: each service claims only the jobs of tasks it runs, and
    the jobs of a service that stopped a moment ago wait for it (it is recent)."""
    store = tmp_path / "shared.db"
    for proj, mod in (("shop", "shoptasks"), ("blog", "blogtasks")):
        d = tmp_path / proj
        d.mkdir()
        _module(d, mod, f"""
            import jobrun
            app = jobrun.App()

            @app.task
            def work(n: int) -> str:
                return "{proj} " + str(n)
            """)
        (d / "jobrun.toml").write_text(f'[jobrun]\nstore = "{store}"\nimport = ["{mod}"]\n'
                                       'poll = "100ms"\n', encoding="utf-8")
    shop_cfg, blog_cfg = (str(tmp_path / p / "jobrun.toml") for p in ("shop", "blog"))
    procs = [_service(tmp_path / "shop", shop_cfg, "shop.log"),
             _service(tmp_path / "blog", blog_cfg, "blog.log")]
    app = jobrun.App(str(store))
    try:
        wait_for(lambda: _catalog_has(str(store), "shoptasks:work") and
                 _catalog_has(str(store), "blogtasks:work"), 20, "both catalogs")
        # Both running: every job is run by its own project's service.
        jobs = [app.enqueue(f"{m}:work", args=[i]) for i in range(6)
                for m in ("shoptasks", "blogtasks")]
        wait_for(lambda: all(j.refresh().state == "succeeded" for j in jobs), 30, "the jobs")
        assert [j.result() for j in jobs] == [f"{p} {i}" for i in range(6)
                                               for p in ("shop", "blog")]
        # The blog's service stops; its jobs enqueued now wait, even while another shop
        # service starts and sweeps the store for unknown tasks.
        _stop(procs[1])
        later = [app.enqueue("blogtasks:work", args=[i]) for i in range(6)]
        procs.append(_service(tmp_path / "shop", shop_cfg, "shop2.log"))
        shop_job = app.enqueue("shoptasks:work", args=[99])
        wait_for(lambda: shop_job.refresh().state == "succeeded", 20, "the shop job")
        assert all(j.refresh().state == "queued" for j in later), \
            [(j.id, j.state) for j in later]
        procs.append(_service(tmp_path / "blog", blog_cfg, "blog2.log"))
        wait_for(lambda: all(j.refresh().state == "succeeded" for j in later), 20,
                 "the blog's later jobs")
        assert [j.result() for j in later] == [f"blog {i}" for i in range(6)]
    finally:
        app.close()
        for p in procs:
            _stop(p)


@pytest.mark.slow
def test_by_name_enqueue_gets_the_declared_options(tmp_path: Path) -> None:
    """A producer that never imported the module gets the queue, priority, attempts and
    timeout the task declares (and its queue's), from the catalog the service publishes."""
    store = tmp_path / "jobs.db"
    _module(tmp_path, "reporting", """
        import jobrun
        app = jobrun.App()

        @app.task(queue="reports", max_attempts=2, timeout=5, priority=7)
        def report(n: int) -> int:
            return n

        @app.task(queue="reports")
        def plain(n: int) -> int:
            return n
        """)
    cfg = tmp_path / "jobrun.toml"
    cfg.write_text(f'[jobrun]\nstore = "{store}"\nimport = ["reporting"]\n\n'
                   '[queues.reports]\nconcurrency = 2\nexecutor = "process"\n'
                   'timeout = "9s"\nmax_attempts = 3\n', encoding="utf-8")
    svc = _service(tmp_path, str(cfg), "svc.log")
    try:
        wait_for(lambda: _catalog_has(str(store), "reporting:report"), 20, "the catalog")
        # A producer with no config and no import of `reporting`.
        code = textwrap.dedent(f"""
            import json, jobrun
            app = jobrun.App({str(store)!r})
            a = app.enqueue("reporting:report", args=[1]).record
            b = app.enqueue("reporting:plain", args=[2]).record
            c = app.enqueue("reporting:report", args=[3], queue="default", priority=1,
                            max_attempts=9).record
            print(json.dumps([[r.queue, r.priority, r.max_attempts, r.timeout]
                              for r in (a, b, c)]))
            """)
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBRUN_")}
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, cwd="/", timeout=60)
        assert r.returncode == 0, r.stderr
        import json
        assert json.loads(r.stdout) == [["reports", 7, 2, 5.0], ["reports", 0, 3, 9.0],
                                        ["default", 1, 9, 5.0]]
        # The CLI resolves the same way.
        out = run_cli("enqueue", "reporting:report", "[4]", "--store", str(store), "--json",
                      cwd="/")
        assert out.returncode == 0, out.stderr
        rec = jobrun.App(str(store)).job(json.loads(out.stdout)["id"]).record
        assert (rec.queue, rec.priority, rec.max_attempts, rec.timeout) == \
            ("reports", 7, 2, 5.0)
    finally:
        _stop(svc)


def _catalog_app(store: str) -> jobrun.App:
    """A store whose catalog knows `known:send` (a service ran there with it)."""
    app = jobrun.App(store)
    from jobrun.registry import Registry, TaskSpec
    from jobrun.service import Service

    reg = Registry()
    reg.add(TaskSpec("known:send", lambda: None))
    reg.add(TaskSpec("known:report", lambda: None))
    svc = Service(store, registry=reg)
    svc.start()
    svc.stop(1)
    return app


def test_unknown_task_at_enqueue_names_close_matches(store_path: str) -> None:
    app = _catalog_app(store_path)
    with pytest.raises(jobrun.UnknownTask, match="known:send"):
        app.enqueue("known:sned")
    assert app.store.read("SELECT count(*) FROM jobs")[0][0] == 0
    job = app.enqueue("known:sned", allow_unknown=True)
    assert job.state == "queued"
    assert app.enqueue("known:send").state == "queued"
    app.close()


def test_cli_unknown_task_refused(store_path: str) -> None:
    _catalog_app(store_path).close()
    r = run_cli("enqueue", "known:sned", "--store", store_path)
    assert r.returncode == 1 and "known:send" in r.stderr, r.stderr
    ok = run_cli("enqueue", "known:sned", "--store", store_path, "--allow-unknown")
    assert ok.returncode == 0, ok.stderr


def test_empty_catalog_accepts_and_warns_once(store_path: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    app = jobrun.App(store_path)
    with caplog.at_level(logging.WARNING, logger="jobrun"):
        app.enqueue("never:declared")
        app.enqueue("never:declared")
    warnings = [r for r in caplog.records if "no service" in r.getMessage()]
    assert len(warnings) == 1 and store_path in warnings[0].getMessage()
    app.close()


def test_unknown_task_row_goes_dead(store_path: str) -> None:
    """A job whose task no live or recent service declares goes dead with UnknownTask; a
    job of a task another live service declares is left for it."""
    app = _catalog_app(store_path)
    bad = app.enqueue("os:system", args=["true"], allow_unknown=True)

    @app.task
    def mine() -> int:
        return 1

    job = mine.enqueue()
    jobrun.testing.run_until_idle(app)
    assert job.result() == 1
    rec = wait_for(lambda: (r := app.job(bad.id).record).state == "dead" and r, 10,
                   "the unknown job to go dead")
    assert rec.errors[-1]["type"] == "UnknownTask"
    app.close()


# -- a cancelled running job is logged and counted as cancelled ------------------------------
def test_cancel_running_job_is_logged_and_counted_as_cancelled(
        store_path: str, caplog: pytest.LogCaptureFixture) -> None:
    import socket
    import threading
    import urllib.request

    from jobrun.config import Settings
    from jobrun.service import Service

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(metrics={"listen": f"127.0.0.1:{port}"})
    app = jobrun.App(store_path, settings=settings)
    started, release = threading.Event(), threading.Event()

    @app.task
    def slow_cancel() -> str:
        started.set()
        release.wait(20)
        return "done anyway"

    job = slow_cancel.enqueue()
    svc = Service(store_path, settings)
    with caplog.at_level(logging.INFO, logger="jobrun"):
        svc.start()
        try:
            assert started.wait(10)
            assert job.cancel()
            wait_for(lambda: any("cancelled while running" in r.getMessage()
                                 for r in caplog.records), 10, "the cancel to be seen")
            release.set()
            wait_for(lambda: svc.inflight() == 0, 10, "the job to return")
            wait_for(lambda: any("discarded" in r.getMessage() for r in caplog.records), 10,
                     "the outcome to be recorded")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                body = r.read().decode()
        finally:
            svc.stop(2)
    assert job.refresh().state == "cancelled"
    mine = [ln for ln in body.splitlines() if ln.startswith("jobrun_jobs_total")
            and "slow_cancel" in ln]
    assert mine and all('outcome="cancelled"' in ln for ln in mine), mine
    said = [r.getMessage() for r in caplog.records if f"job {job.id} " in r.getMessage()]
    assert not any(m.endswith(" succeeded") for m in said), said
    assert any("cancelled" in m and "discarded" in m for m in said), said
    app.close()


def test_rescued_error_names_its_attempt(app: jobrun.App) -> None:
    @app.task
    def stuck() -> None: ...

    job = stuck.enqueue()
    tick = app.store.acquire_round([], {"default": 1}, "ghost-1", now=jobrun.clock.now(), lease=60)
    assert [c.id for c in tick.claims] == [job.id]
    app.store.rescue_holder("ghost-1", "worker lost", now=jobrun.clock.now())
    err = app.job(job.id).record.errors[-1]
    assert err["type"] == "WorkerLost" and err["attempt"] == 1, err


def test_pause_knows_the_queues_of_declared_tasks(store_path: str) -> None:
    """A queue the catalog sends a task to is known (no config needed); a typo is not."""
    from jobrun.registry import Registry, TaskSpec
    from jobrun.service import Service

    reg = Registry()
    reg.add(TaskSpec("known:report", lambda: None, queue="reports"))
    svc = Service(store_path, registry=reg)
    svc.start()
    svc.stop(1)
    ok = run_cli("pause", "reports", "--store", store_path)
    assert ok.returncode == 0, ok.stderr
    typo = run_cli("pause", "reprots", "--store", store_path)
    assert typo.returncode == 1 and "reports" in typo.stderr, typo.stderr


def test_an_unknown_queue_is_warned_about_once(store_path: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    app = _catalog_app(store_path)
    with caplog.at_level(logging.WARNING, logger="jobrun"):
        app.enqueue("known:send", queue="emials")
        app.enqueue("known:send", queue="emials")
        app.enqueue("known:send", queue="default")
    said = [r.getMessage() for r in caplog.records if "is not served" in r.getMessage()]
    assert len(said) == 1 and "'emials'" in said[0], said
    app.close()


def test_show_escapes_what_a_job_printed(store_path: str) -> None:
    """A job's output or error with terminal escapes must not drive the operator's terminal."""
    app = jobrun.App(store_path)
    job = app.enqueue("evil:task", allow_unknown=True)
    holder = "ghost-2"
    tick = app.store.acquire_round([], {"default": 1}, holder, now=jobrun.clock.now(), lease=60)
    (c,) = tick.claims
    from jobrun.model import Outcome, error_entry

    err = error_entry("Boom", "\x1b]0;pwned\x07\x1b[2J gone\x00", c.attempt, jobrun.clock.now(),
                      traceback="Traceback\n  \x1b[31mred\n")
    app.store.record([Outcome(c.id, c.token, "dead", error=err)], now=jobrun.clock.now())
    app.close()
    r = run_cli("show", str(job.id), "--store", store_path)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x00" not in r.stdout and "\x07" not in r.stdout
    assert "\\x1b" in r.stdout and "pwned" in r.stdout


def test_a_producer_without_the_config_honours_the_services_durability(store_path: str) -> None:
    """Found by a stranger: App("jobs.db") with no $JOBRUN_CONFIG acknowledged enqueues
    without a sync while the service's config said durability = "full"."""
    from jobrun.config import Settings
    from jobrun.registry import Registry, TaskSpec
    from jobrun.service import Service

    reg = Registry()
    reg.add(TaskSpec("known:send", lambda: None))
    svc = Service(store_path, Settings(durability="full"), registry=reg)
    svc.start()
    svc.stop(1)
    app = jobrun.App(store_path)  # no config: it cannot know the service's durability
    assert app.store.durability == "full"
    assert app.store.connection().execute("PRAGMA synchronous").get == 2  # FULL
    app.close()
    svc2 = Service(store_path, Settings(durability="normal"), registry=reg)
    svc2.start()
    svc2.stop(1)
    later = jobrun.App(store_path)
    assert later.store.durability == "normal"
    later.close()
