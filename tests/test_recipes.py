"""The recipes under recipes/, run for real.

Each test deploys a recipe as a user would: it copies the recipe's folder into tmp_path
(its `jobrun.toml`, with `store = "jobs.db"` beside it, edited only where a test needs a
short retry or timeout), then either imports the recipe's module with `$JOBRUN_CONFIG`
pointing at that copy and runs `jobrun.testing.run_until_idle(app)`, or runs a real
`jobrun start --config` on the copy and drives it with the `jobrun` CLI. Every wait has a
deadline; no sleeps.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import apsw
import pytest

import jobrun
import jobrun.testing
from conftest import ROOT, run_cli, wait_for
from crashapp.harness import ServiceProc, wait_serving
from jobrun.config import Settings

RECIPES = ROOT / "recipes"
ALL = ["email_once", "fanout", "webhooks", "cron_cleanup", "web_txn", "resumable",
       "cpu_report"]


# -- helpers -------------------------------------------------------------------------------
def deploy(tmp_path: Path, name: str, subs: dict[str, str] | None = None,
           extra: str = "") -> Path:
    """Copy recipes/NAME to tmp_path/NAME; replace text in its jobrun.toml, append `extra`."""
    dst = tmp_path / name
    shutil.copytree(RECIPES / name, dst, ignore=shutil.ignore_patterns(
        "*.db", "*.db-*", "*.db.jobrun", "__pycache__", "outbox.jsonl"))
    cfg = dst / "jobrun.toml"
    text = cfg.read_text(encoding="utf-8")
    for old, new in (subs or {}).items():
        assert old in text, f"{old!r} is not in {name}/jobrun.toml any more"
        text = text.replace(old, new)
    cfg.write_text(text + extra, encoding="utf-8")
    return dst


Loader = Callable[..., tuple[ModuleType, Path]]


@pytest.fixture
def load_recipe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Loader]:
    """Deploy a recipe and import its module from the copy, with $JOBRUN_CONFIG set to it
    (so the module's `jobrun.App()` reads that config and its store)."""
    loaded: list[tuple[list[str], ModuleType]] = []

    def load(name: str, module: str, subs: dict[str, str] | None = None, extra: str = "",
             also: tuple[str, ...] = ()) -> tuple[ModuleType, Path]:
        folder = deploy(tmp_path, name, subs, extra)
        monkeypatch.setenv("JOBRUN_CONFIG", str(folder / "jobrun.toml"))
        monkeypatch.syspath_prepend(str(folder))
        names = [module, *also]
        for n in names:
            sys.modules.pop(n, None)
        mod = importlib.import_module(module)
        loaded.append((names, mod))
        return mod, folder

    yield load
    for names, _mod in loaded:
        for n in names:
            m = sys.modules.pop(n, None)
            app = getattr(m, "app", None)
            if isinstance(app, jobrun.App):
                app.close()


def one(db: str, sql: str, params: Any = None) -> Any:
    conn = apsw.Connection(db)
    try:
        row = conn.execute(sql, params).fetchone()
    finally:
        conn.close()
    return None if row is None else row[0]


def utc(stamps: list[str]) -> list[str]:
    return [s.replace("+00:00", "Z") for s in stamps]


def show(cfg: str, job_id: int) -> dict[str, Any]:
    r = run_cli("show", str(job_id), "--json", "--config", cfg)
    assert r.returncode == 0, r.stderr
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def wait_finished(cfg: str, job_id: int, timeout: float = 20.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        j = show(cfg, job_id)
        return j if j["state"] in ("succeeded", "dead", "cancelled") else None
    result: dict[str, Any] = wait_for(done, timeout, f"job {job_id} to finish")
    return result


def enqueue_cli(cfg: str, *args: str) -> int:
    r = run_cli("enqueue", "--config", cfg, *args)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip())


def stop(svc: ServiceProc) -> None:
    svc.send(signal.SIGTERM)
    assert svc.wait(20) == 0, svc.log_text()[-3000:]


# -- every recipe --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_recipe_folder_is_complete_and_its_config_checks(name: str) -> None:
    folder = RECIPES / name
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert "## Run it" in readme and "jobrun start" in readme and "```sh" in readme
    assert list(folder.glob("*.py")), f"{name} has no code"
    r = run_cli("check", "--config", str(folder / "jobrun.toml"),
                env={"PYTHONDONTWRITEBYTECODE": "1"})  # nothing written into recipes/
    assert r.returncode == 0, r.stderr


# -- 1. email_once -------------------------------------------------------------------------
FAST_MAIL = {'retry_base = "5s"': 'retry_base = "10ms"'}


def outbox(folder: Path) -> list[dict[str, Any]]:
    path = folder / "outbox.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_email_once_retry_after_the_send_does_not_send_twice(
        load_recipe: Loader, monkeypatch: pytest.MonkeyPatch) -> None:
    welcome, folder = load_recipe("email_once", "welcome", FAST_MAIL)
    crm_calls: list[int] = []

    def flaky_crm(user_id: int, message_id: str) -> None:
        crm_calls.append(user_id)
        if len(crm_calls) == 1:
            raise ConnectionError("CRM unreachable")  # after the email went out

    monkeypatch.setattr(welcome, "tell_crm", flaky_crm)
    job = welcome.send_welcome.enqueue(42, "ada@example.com")
    assert jobrun.testing.run_until_idle(welcome.app, timeout=20) == {"succeeded": 1}
    sent = outbox(folder)
    assert len(sent) == 1, sent  # two attempts, one email
    assert sent[0]["to"] == "ada@example.com"
    assert sent[0]["idempotency_key"] == "welcome-email:42"
    assert job.result(timeout=1) == sent[0]["message_id"]
    assert job.attempts == 2 and crm_calls == [42, 42]
    assert [e["type"] for e in job.refresh().record.errors] == ["ConnectionError"]
    store = welcome.app.store_path
    assert one(store, "SELECT count(*) FROM sent_emails") == 1
    assert one(store, "SELECT job_id FROM processed_operations WHERE key = ?",
               ("welcome-email:42",)) == job.id

    # Another job for the same user (a double click, a replayed event): no second email.
    again = welcome.send_welcome.enqueue(42, "ada@example.com")
    assert jobrun.testing.run_until_idle(welcome.app, timeout=20) == {"succeeded": 2}
    assert again.result(timeout=1) == sent[0]["message_id"] and again.attempts == 1
    assert len(outbox(folder)) == 1


def test_email_once_failed_send_records_nothing_and_the_retry_sends(
        load_recipe: Loader, monkeypatch: pytest.MonkeyPatch) -> None:
    welcome, folder = load_recipe("email_once", "welcome", FAST_MAIL)
    real_send = welcome.mailer.send
    tries: list[str] = []

    def send(*args: Any, **kwargs: Any) -> str:
        tries.append(args[0])
        if len(tries) == 1:
            raise TimeoutError("SMTP server timed out")  # nothing was sent
        return str(real_send(*args, **kwargs))

    monkeypatch.setattr(welcome.mailer, "send", send)
    job = welcome.send_welcome.enqueue(7, "bob@example.com")
    assert jobrun.testing.run_until_idle(welcome.app, timeout=20) == {"succeeded": 1}
    assert job.refresh().attempts == 2 and len(tries) == 2
    assert [m["to"] for m in outbox(folder)] == ["bob@example.com"]


def test_email_once_concurrent_jobs_for_one_user_send_once(load_recipe: Loader) -> None:
    """Three jobs for the same user running at the same time (a replayed event, no `key=`).

    BUG (jobrun/once.py `Once.__enter__`): `op.done` is read without any claim on the key,
    so attempts that run at once all see `done == False` and all do the side effect; only
    the first to commit keeps its bookkeeping (the others end with `op.duplicate`), but the
    emails are out. tests/test_once.py::test_two_jobs_one_operation fails the same way."""
    welcome, folder = load_recipe("email_once", "welcome", FAST_MAIL)
    jobs = [welcome.send_welcome.enqueue(5, "cy@example.com") for _ in range(3)]
    assert jobrun.testing.run_until_idle(welcome.app, timeout=20) == {"succeeded": 3}
    ids = {j.result(timeout=1) for j in jobs}
    assert len(outbox(folder)) == 1, outbox(folder)
    assert len(ids) == 1


# -- 2. fanout -----------------------------------------------------------------------------
def test_fanout_enqueues_10000_jobs_in_one_call_and_all_run(load_recipe: Loader) -> None:
    newsletter, _ = load_recipe("fanout", "newsletter")
    started = time.monotonic()
    jobs = newsletter.fan_out(1, range(10_000))
    enqueue_s = time.monotonic() - started
    store = newsletter.app.store_path
    assert len(jobs) == 10_000 and len({j.id for j in jobs}) == 10_000
    assert one(store, "SELECT count(*) FROM jobs WHERE task = 'newsletter:send_issue' "
                      "AND state = 'queued' AND queue = 'newsletter'") == 10_000
    assert enqueue_s < 10, enqueue_s
    assert jobrun.testing.run_until_idle(newsletter.app, timeout=40) == {"succeeded": 10_000}
    assert one(store, "SELECT sum(json_extract(result, '$')) FROM jobs") == sum(range(10_000))


def test_fanout_is_all_or_nothing(load_recipe: Loader) -> None:
    newsletter, _ = load_recipe("fanout", "newsletter")
    store = newsletter.app.store_path
    _ = newsletter.app.store  # the store exists before the caller's own transaction below
    # A payload that is not JSON refuses the whole batch: nothing stored.
    with pytest.raises(TypeError, match="set"):
        newsletter.app.enqueue_many([newsletter.send_issue.call(1, s) for s in range(9_999)]
                                    + [newsletter.send_issue.call(1, {2})])
    assert one(store, "SELECT count(*) FROM jobs") == 0
    # Inside the caller's transaction: a rollback takes all 10,000 jobs with it.
    conn = apsw.Connection(store)
    conn.set_busy_timeout(5000)
    conn.execute("BEGIN IMMEDIATE")
    assert len(newsletter.fan_out(2, range(10_000), connection=conn)) == 10_000
    conn.execute("ROLLBACK")
    conn.close()
    assert one(store, "SELECT count(*) FROM jobs") == 0


def test_fanout_publish_fans_out_once_per_issue(load_recipe: Loader) -> None:
    newsletter, _ = load_recipe("fanout", "newsletter")
    first = newsletter.publish.enqueue(3, 500)
    assert jobrun.testing.run_until_idle(newsletter.app, timeout=30) == {"succeeded": 501}
    second = newsletter.publish.enqueue(3, 500)  # re-published by mistake
    assert jobrun.testing.run_until_idle(newsletter.app, timeout=30) == {"succeeded": 502}
    assert (first.result(timeout=1), second.result(timeout=1)) == (500, 0)
    assert one(newsletter.app.store_path,
               "SELECT count(*) FROM jobs WHERE task = 'newsletter:send_issue'") == 500


# -- 3. webhooks ---------------------------------------------------------------------------
class Receiver(ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1: each path answers the statuses of its plan in turn
    (the last one from then on) and records what it got."""

    daemon_threads = True

    def __init__(self, plans: dict[str, list[int]]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.plans = {k: list(v) for k, v in plans.items()}
        self.got: dict[str, list[tuple[dict[str, str], bytes]]] = {k: [] for k in plans}
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        srv = self.server
        with srv.lock:
            plan = srv.plans.get(self.path, [404])
            status = plan.pop(0) if len(plan) > 1 else plan[0]
            if self.path in srv.got:
                srv.got[self.path].append((dict(self.headers), body))
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    srv = Receiver({"/flaky": [500, 500, 200], "/missing": [404], "/slow-down": [429, 200]})
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    t.join(5)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()  # nothing listens there now: connection refused
    return port


def test_webhooks_retry_5xx_and_network_errors_and_give_up_on_4xx(
        load_recipe: Loader, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "s3cret")
    webhooks, _ = load_recipe("webhooks", "webhooks", {'retry_base = "5s"': 'retry_base = "20ms"'})
    event = {"type": "order.paid", "order": 7}
    flaky = webhooks.deliver.enqueue(receiver.url("/flaky"), event)
    missing = webhooks.deliver.enqueue(receiver.url("/missing"), event)
    slow = webhooks.deliver.enqueue(receiver.url("/slow-down"), event)
    down = webhooks.deliver.options(max_attempts=3).enqueue(
        f"http://127.0.0.1:{closed_port()}/hook", event)
    counts = jobrun.testing.run_until_idle(webhooks.app, timeout=30)
    assert counts == {"succeeded": 2, "dead": 2}, counts

    # 500, 500, 200: succeeded on attempt 3, after two backoff retries.
    r = flaky.refresh().record
    assert (r.state, r.attempts, r.result) == ("succeeded", 3, {"status": 200, "attempt": 3})
    assert [e["type"] for e in r.errors] == ["DeliveryFailed", "DeliveryFailed"]
    assert "500" in r.errors[0]["message"]
    got = receiver.got["/flaky"]
    assert len(got) == 3
    body = json.dumps(event, separators=(",", ":")).encode()
    sig = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    for headers, raw in got:  # every attempt: same body, same Webhook-Id, signed
        assert raw == body and headers["Webhook-Id"] == str(flaky.id)
        assert headers["Webhook-Signature"] == sig

    # 404: dead after one attempt, Permanent.
    r = missing.refresh().record
    assert (r.state, r.attempts) == ("dead", 1)
    assert [e["type"] for e in r.errors] == ["Permanent"] and "404" in r.errors[0]["message"]
    assert len(receiver.got["/missing"]) == 1

    # 429 with Retry-After: 0: jobrun.Retry, then 200.
    r = slow.refresh().record
    assert (r.state, r.attempts, [e["type"] for e in r.errors]) == ("succeeded", 2, ["Retry"])

    # Connection refused: retried as a network error until max_attempts.
    r = down.refresh().record
    assert (r.state, r.attempts) == ("dead", 3)
    assert {e["type"] for e in r.errors} == {"URLError"}, r.errors


# -- 4. cron_cleanup -----------------------------------------------------------------------
def test_cron_cleanup_next_fires_in_berlin_time() -> None:
    cfg = str(RECIPES / "cron_cleanup" / "jobrun.toml")

    def fires(start: str) -> dict[str, dict[str, Any]]:
        r = run_cli("cron", "ls", "--config", cfg, "--from", start, "--count", "2", "--json")
        assert r.returncode == 0, r.stderr
        return {e["name"]: e for e in json.loads(r.stdout)}

    winter = fires("2026-01-10T00:00:00Z")  # CET, UTC+1
    assert utc(winter["nightly-cleanup"]["next"]) == ["2026-01-10T02:30:00Z",
                                                      "2026-01-11T02:30:00Z"]
    assert utc(winter["nightly-backup"]["next"]) == ["2026-01-10T03:00:00Z",
                                                     "2026-01-11T03:00:00Z"]
    assert winter["nightly-cleanup"]["task"] == "cleanup:purge_old_files"
    # Across the switch to summer time (29 March 2026, 02:00 CET -> 03:00 CEST).
    spring = fires("2026-03-28T12:00:00Z")
    assert utc(spring["nightly-cleanup"]["next"]) == ["2026-03-29T01:30:00Z",
                                                      "2026-03-30T01:30:00Z"]


def test_cron_cleanup_tasks_run_in_a_real_service_and_a_stuck_backup_times_out(
        tmp_path: Path) -> None:
    # The recipe, plus a variant of its backup task with a 1 s timeout.
    folder = deploy(tmp_path, "cron_cleanup", extra="""
[tasks.backup_short_timeout]
command = ["tar", "-czf"]
queue = "maintenance"
timeout = 1
max_attempts = 1
""")
    cfg = str(folder / "jobrun.toml")
    data = tmp_path / "data"
    uploads = data / "uploads"
    (uploads / "2025" / "old").mkdir(parents=True)
    (uploads / "new.txt").write_text("keep me")
    (uploads / "2025" / "old" / "stale.bin").write_bytes(b"x" * 1000)
    (uploads / "2025" / "stale.txt").write_text("old")
    month_ago = time.time() - 30 * 86400
    for p in ("2025/old/stale.bin", "2025/stale.txt"):
        os.utime(uploads / p, (month_ago, month_ago))
    archive = tmp_path / "uploads.tgz"
    fifo = tmp_path / "hung-mount.tgz"
    os.mkfifo(fifo)  # nobody reads it: tar blocks opening it, like a backup onto a hung mount

    svc = ServiceProc(cfg, tmp_path / "service.log")
    try:
        wait_serving(str(folder / "jobs.db"), svc)
        backup = enqueue_cli(cfg, "backup", json.dumps([str(archive), "-C", str(data),
                                                        "uploads"]))
        j = wait_finished(cfg, backup)
        assert (j["state"], j["attempts"]) == ("succeeded", 1), j
        assert j["result"]["exit_code"] == 0
        with tarfile.open(archive) as tar:
            names = set(tar.getnames())
        assert {"uploads/new.txt", "uploads/2025/stale.txt"} <= names, names

        cleanup = enqueue_cli(cfg, "cleanup:purge_old_files", "--kwargs",
                              json.dumps({"folder": str(uploads), "older_than_days": 14}))
        j = wait_finished(cfg, cleanup)
        assert j["state"] == "succeeded", j
        assert j["result"] == {"folder": str(uploads), "removed": 2, "kept": 1,
                               "bytes_freed": 1003}
        assert sorted(p.name for p in uploads.rglob("*")) == ["new.txt"]

        started = time.monotonic()
        stuck = enqueue_cli(cfg, "backup_short_timeout",
                            json.dumps([str(fifo), "-C", str(data), "uploads"]))
        j = wait_finished(cfg, stuck)
        assert (j["state"], j["attempts"]) == ("dead", 1), j
        assert [e["type"] for e in j["errors"]] == ["TaskTimeout"], j["errors"]
        assert "timed out after 1s" in j["errors"][0]["message"]
        assert time.monotonic() - started < 15
        # The tar process (and its gzip) were stopped, not left blocked on the fifo.
        wait_for(lambda: not any(str(fifo) in c for c in cmdlines()), 10,
                 "the stuck tar to be gone")
    finally:
        try:
            stop(svc)
        finally:
            svc.kill()


def cmdlines() -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    out.append(f.read().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return out


# -- 5. web_txn ----------------------------------------------------------------------------
def test_web_txn_job_exists_if_and_only_if_the_order_does(
        load_recipe: Loader, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("flask")
    webmod, _ = load_recipe("web_txn", "web", also=("orders",))
    orders = sys.modules["orders"]
    web = webmod.create_app()
    client = web.test_client()
    orders.add_stock("widget", 5)
    store = orders.app.store_path

    enqueued: list[int] = []  # every job id a request enqueued, committed or not
    real_place = orders.confirm_order.options

    def spy(**opts: Any) -> Any:
        o = real_place(**opts)
        enqueue = o.enqueue

        def enqueue_and_note(*a: Any, **kw: Any) -> Any:
            job = enqueue(*a, **kw)
            enqueued.append(job.id)
            return job
        o.enqueue = enqueue_and_note
        return o

    monkeypatch.setattr(orders.confirm_order, "options", spy)

    def count(table: str) -> int:
        return int(one(store, f"SELECT count(*) FROM {table}"))

    # A request that commits: the order and its job.
    r = client.post("/orders", json={"customer": "ada", "lines": [{"sku": "widget", "qty": 2}]})
    assert r.status_code == 201, r.data
    order_id, job_id = r.json["order_id"], r.json["job_id"]
    assert enqueued == [job_id]
    assert (count("orders"), count("jobs")) == (1, 1)
    assert one(store, "SELECT args FROM jobs WHERE id = ?", (job_id,)) == f"[{order_id}]"

    # A request that fails after its enqueue (out of stock): neither order nor job.
    r = client.post("/orders", json={"customer": "bob", "lines": [{"sku": "widget", "qty": 99}]})
    assert r.status_code == 409, r.data
    assert len(enqueued) == 2 and enqueued[1] is not None
    assert (count("orders"), count("order_lines"), count("jobs")) == (1, 1, 1)
    assert one(store, "SELECT count(*) FROM jobs WHERE id = ?", (enqueued[1],)) == 0
    assert one(store, "SELECT available FROM stock WHERE sku = 'widget'") == 3

    # An unexpected error after the enqueue (a CHECK constraint on qty): 500, nothing kept.
    r = client.post("/orders", json={"customer": "eve", "lines": [{"sku": "widget", "qty": 0}]})
    assert r.status_code == 500
    assert len(enqueued) == 3
    assert (count("orders"), count("order_lines"), count("jobs")) == (1, 1, 1)

    # The committed job runs, and finds its order.
    assert jobrun.testing.run_until_idle(orders.app, timeout=20) == {"succeeded": 1}
    assert orders.app.job(job_id).result(timeout=1) == f"order {order_id} confirmed for ada"
    r = client.get(f"/orders/{order_id}")
    assert r.status_code == 200 and r.json["confirmed"] is True


def test_web_txn_each_commit_wakes_the_service(load_recipe: Loader, tmp_path: Path) -> None:
    """A job enqueued with `connection=` starts when its transaction commits, not at the
    service's next poll (here 5 s), for every request, each on a connection of its own.

    BUG (jobrun/bell.py `ring_after_commit`, then in app.py): the commit hook is remembered per `id(connection)` in the
    module dict `_armed`, never removed. Once a request's connection is closed, the next
    request's connection often gets the same id(); `_arm` then finds the old entry, does not
    set a commit hook on the new connection, and its commit rings nobody: the job waits for
    the poll."""
    pytest.importorskip("flask")
    webmod, folder = load_recipe("web_txn", "web", {"shutdown_timeout = 30":
                                                    'shutdown_timeout = 30\npoll = "5s"'},
                                 also=("orders",))
    orders = sys.modules["orders"]
    client = webmod.create_app().test_client()
    orders.add_stock("widget", 100)
    store = orders.app.store_path
    svc = ServiceProc(str(folder / "jobrun.toml"), tmp_path / "service.log")
    try:
        wait_serving(store, svc)
        for n in range(4):
            r = client.post("/orders", json={"customer": f"c{n}",
                                             "lines": [{"sku": "widget", "qty": 1}]})
            assert r.status_code == 201, r.data
            job_id = r.json["job_id"]
            wait_for(lambda j=job_id: one(store, "SELECT state FROM jobs WHERE id = ?", (j,))
                     == "succeeded", 2.5, f"request {n + 1}'s job to run (woken at commit)")
    finally:
        try:
            stop(svc)
        finally:
            svc.kill()


def test_enqueue_with_connection_on_a_store_not_yet_created(tmp_path: Path) -> None:
    """BUG (jobrun): the first `enqueue(connection=conn)` on a file whose job store does not
    exist yet fails: the App opens the store with a connection of its own, whose set-up
    (journal_mode=WAL, the schema) needs the write lock that `conn` holds. In rollback-journal
    mode it fails at once with "stayed locked for 30s"; if the file is in WAL mode already it
    waits the full 30 s busy timeout on itself first. The web_txn recipe works around it with
    `orders.init_db()` at start-up."""
    path = str(tmp_path / "shop.db")
    app = jobrun.App(path)
    conn = apsw.Connection(path)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT)")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO orders (customer) VALUES ('ada')")
    try:
        job = app.enqueue("orders:confirm_order", args=[1], connection=conn)
        conn.execute("COMMIT")
        assert app.job(job.id).state == "queued"
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()
        app.close()


# -- 6. resumable --------------------------------------------------------------------------
def test_resumable_retry_starts_at_the_step_that_failed(
        load_recipe: Loader, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pipeline, _ = load_recipe("resumable", "pipeline",
                              {'retry_base = "30s"': 'retry_base = "10ms"'})
    real_transform = pipeline.STEPS["transform"]
    calls: list[int] = []

    def transform(dataset: str, workdir: str) -> None:
        calls.append(jobrun.context().attempt)
        if len(calls) == 1:
            raise OSError("disk full")  # step 3 of 5 fails on attempt 1
        real_transform(dataset, workdir)

    monkeypatch.setitem(pipeline.STEPS, "transform", transform)
    workdir = tmp_path / "work"
    job = pipeline.import_dataset.enqueue("sales", str(workdir))
    assert jobrun.testing.run_until_idle(pipeline.app, timeout=20) == {"succeeded": 1}
    assert job.refresh().attempts == 2
    assert job.result(timeout=1) == {"ran": ["transform", "index", "publish"],
                                     "skipped": ["fetch", "parse"]}
    journal = (workdir / "journal.log").read_text().splitlines()
    assert journal == ["fetch attempt 1", "parse attempt 1", "transform attempt 1",
                       "transform attempt 2", "index attempt 2", "publish attempt 2"]
    assert pipeline.progress("sales") == [
        ("fetch", job.id, 1), ("parse", job.id, 1), ("transform", job.id, 2),
        ("index", job.id, 2), ("publish", job.id, 2)]
    published = json.loads((workdir / "sales.published.json").read_text())
    assert published["totals"]["count"] == 1000

    # A new job for the same dataset: nothing left to do. After reset(): all five again.
    again = pipeline.import_dataset.enqueue("sales", str(workdir))
    assert jobrun.testing.run_until_idle(pipeline.app, timeout=20) == {"succeeded": 2}
    assert again.result(timeout=1) == {"ran": [], "skipped": list(pipeline.STEP_NAMES)}
    pipeline.reset("sales")
    fresh = pipeline.import_dataset.enqueue("sales", str(workdir))
    assert jobrun.testing.run_until_idle(pipeline.app, timeout=20) == {"succeeded": 3}
    assert fresh.result(timeout=1) == {"ran": list(pipeline.STEP_NAMES), "skipped": []}


# -- 7. cpu_report -------------------------------------------------------------------------
def ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_cpu_report_runs_in_a_child_process(tmp_path: Path) -> None:
    folder = deploy(tmp_path, "cpu_report")
    cfg = str(folder / "jobrun.toml")
    svc = ServiceProc(cfg, tmp_path / "service.log")
    try:
        wait_serving(str(folder / "jobs.db"), svc)
        job_id = enqueue_cli(cfg, "reports:primes_report", "[300000]")
        j = wait_finished(cfg, job_id, timeout=30)
        assert (j["state"], j["queue"]) == ("succeeded", "reports"), j
        res = j["result"]
        assert (res["primes"], res["largest"]) == (25997, 299993)
        child = res["pid"]
        assert child not in (svc.pid, os.getpid())
        # A child of the service's forkserver, still in the pool while the service runs.
        forkserver = ppid(child)
        assert forkserver != svc.pid and ppid(forkserver) == svc.pid
    finally:
        try:
            stop(svc)
        finally:
            svc.kill()


# -- systemd -------------------------------------------------------------------------------
UNIT = RECIPES / "systemd" / "jobrun.service"


def unit_settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out


def seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+)\s*(s|sec|min|m)?", value)
    assert m, value
    return float(m.group(1)) * (60 if m.group(2) in ("min", "m") else 1)


def test_systemd_unit_settings() -> None:
    u = unit_settings()

    def get(key: str) -> str:
        assert key in u, f"{key} missing from {UNIT.name}"
        return u[key][-1]

    assert get("Service.Type") == "notify"
    assert get("Service.KillSignal") == "SIGTERM"
    shutdown_timeout = Settings().shutdown_timeout
    assert seconds(get("Service.TimeoutStopSec")) > shutdown_timeout == 30
    assert seconds(get("Service.WatchdogSec")) > 0
    assert get("Service.Restart") == "on-failure"
    assert get("Service.StateDirectory") == "jobrun"
    assert get("Service.NoNewPrivileges") in ("yes", "true", "1")
    assert get("Service.ProtectSystem") == "strict"
    assert get("Service.ProtectHome") in ("yes", "true", "1", "read-only", "tmpfs")
    assert get("Service.PrivateTmp") in ("yes", "true", "1")
    assert get("Service.User")
    assert " start " in get("Service.ExecStart") + " "


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    import subprocess

    exe = os.path.join(sys.prefix, "bin", "jobrun")
    assert os.access(exe, os.X_OK), exe
    text = UNIT.read_text(encoding="utf-8")
    text, n = re.subn(r"^ExecStart=\S+", f"ExecStart={exe}", text, flags=re.MULTILINE)
    assert n == 1
    unit = tmp_path / "jobrun.service"
    unit.write_text(text, encoding="utf-8")
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], check=False,
                       capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "Unknown" not in out and "ignoring" not in out, out
