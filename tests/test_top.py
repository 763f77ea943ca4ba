"""`jobrun top`: views drawn from hand-built snapshots and read as text; snapshots taken from
a real store with an injected `now`; and the real command in a real terminal (tmux)."""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

import jobrun
import jobrun.testing
from conftest import JOBRUN, wait_for
from jobrun import clock
from jobrun.config import CronEntry, QueueConfig, Settings
from jobrun.lock import current_leader
from jobrun.store.sqlite import DASHBOARD, SqliteStore
from jobrun.tui import browse
from jobrun.tui.live import run
from jobrun.tui.snapshot import (
    CronRow,
    Failure,
    QueueRow,
    RunningJob,
    ServiceRow,
    Snapshot,
    take,
)
from jobrun.tui.views import dashboard, dur, num, sparkline
from jobrun.tui.window import Window

NOW = 1_800_000_000.0


# -- views ------------------------------------------------------------------------------------
def draw(snap: Snapshot, width: int = 80, height: int = 24) -> list[str]:
    """The frame as the terminal would show it: lines of text, trailing blanks dropped."""
    out = io.StringIO()
    console = Console(file=out, width=width, height=height)
    console.print(dashboard(snap, width, height))
    return [ln.rstrip() for ln in out.getvalue().splitlines()]


def busy(queues: int = 2, running: int = 3, failures: int = 2, services: int = 2,
         cron: int = 2) -> Snapshot:
    qs = tuple(QueueRow(f"q{i}" if i else "default", queued=1200 + i, scheduled=3,
                        running=0 if i else running,
                        retrying=1, dead=4, oldest_age=75.0, throughput=2.5,
                        succeeded_hour=90, dead_hour=10, cap=4, paused=i == 1)
               for i in range(queues))
    run = tuple(RunningJob(100 + i, "myapp.tasks:build_report", "default", 1, 3, 12.5,
                           "4242-deadbeef") for i in range(running))
    fails = tuple(Failure(50 + i, "myapp.mail:send", "default", "dead" if i % 2 else "retrying",
                          2, 3, NOW - 30, "ValueError", f"boom #{i}\nsecond line")
                  for i in range(failures))
    svcs = tuple(ServiceRow(f"{4242 + i}-deadbeef", 4242 + i, "web-1", NOW - 600,
                            (("default", 4), ("q1", 2)), i == 0) for i in range(services))
    crons = tuple(CronRow(f"nightly-{i}", "0 2 * * *", "myapp.reports:nightly", NOW + 3700)
                  for i in range(cron))
    spark = tuple(i % 9 for i in range(72))
    return Snapshot(now=NOW, store="/srv/jobs.db", queues=qs, running=run, failures=fails,
                    dead_total=4 * queues, dead_hour=3, dead_trend=(0,) * 11 + (3,), spark=spark,
                    throughput=2.5 * queues, cron=crons, services=svcs,
                    leader=svcs[0].holder if svcs else None)


def assert_fits(lines: list[str], width: int = 80, height: int = 24) -> None:
    assert len(lines) <= height, "\n".join(lines)
    assert all(len(ln) <= width for ln in lines), "\n".join(lines)


def test_every_section_shows_in_80x24() -> None:
    lines = draw(busy())
    text = "\n".join(lines)
    assert_fits(lines)
    assert lines[0].startswith("jobrun top") and "/srv/jobs.db" in lines[0]
    # Queues: counts, oldest age, throughput, failure rate, concurrency used/cap, paused.
    row = next(ln for ln in lines if ln.startswith("default"))
    assert row.split() == ["default", "1.2k", "3", "3/4", "1", "4", "1m15s", "2.50", "10%"]
    assert re.search(r"^q1 .* paused$", text, re.M)
    assert "running 3" in text and "myapp.tasks:build_report" in text and "12s" in text
    assert "4242-deadbeef" in text and "1/3" in text
    assert "ValueError: boom #0 second" in text and "retrying" in text  # one line
    assert "dead 8, +3 in the last hour" in text
    assert "services 2" in text and "leader pid 4242" in text and "default:4 q1:2" in text
    assert "nightly-0" in text and "0 2 * * *" in text and "in 1h01m" in text
    assert "5.00/s last min" in text and "▁" in text and "█" in text


def test_long_lists_are_cut_to_the_screen() -> None:
    lines = draw(busy(queues=12, running=40, failures=8, services=6, cron=9))
    text = "\n".join(lines)
    assert_fits(lines)
    assert len(lines) == 24  # the rows are shared out: all of the screen is used
    assert "running 40" in text and "more running" in text
    for section in ("recent failures", "services 6", "cron 9"):
        assert section in text
    assert re.search(r"… \+\d+ more queues", text)


def test_more_room_shows_more() -> None:
    snap = busy(queues=12, running=40, failures=8, services=6, cron=9)
    lines = draw(snap, width=140, height=90)
    text = "\n".join(lines)
    assert_fits(lines, 140, 90)
    assert "more" not in text  # everything fits
    assert sum("myapp.tasks:build_report" in ln for ln in lines) == 40
    assert "ok/1h" in text and "dead/1h" in text  # wide: the hour's counts too


@pytest.mark.parametrize("size", [(40, 8), (60, 5), (80, 3), (30, 24)])
def test_small_terminals_never_overflow(size: tuple[int, int]) -> None:
    width, height = size
    assert_fits(draw(busy(queues=5, running=9), width, height), width, height)


def test_an_empty_store_says_so() -> None:
    text = "\n".join(draw(Snapshot(now=NOW, store="/srv/jobs.db")))
    assert "queues  none yet" in text and "running  none" in text
    assert "services  none alive" in text and "cron  no entries" in text


def test_store_text_is_not_markup() -> None:
    snap = replace(busy(), failures=(
        Failure(1, "t:[red]x[/red]", "default", "dead", 1, 1, NOW, "KeyError", "[bold]k[/]"),))
    text = "\n".join(draw(snap))
    assert "KeyError: [bold]k[/]" in text and "t:[red]x[/red]" in text


def test_formatting_helpers() -> None:
    assert [num(n) for n in (7, 999, 1234, 45_678, 2_500_000)] == \
        ["7", "999", "1.2k", "45k", "2.5M"]
    assert [dur(s) for s in (4.25, 42, 185, 7800, 90000)] == \
        ["4.2s", "42s", "3m05s", "2h10m", "1d1h"]
    assert sparkline([0, 1, 2, 4, 8], 5).plain == "▁▂▃▅█"
    assert sparkline([5] * 100, 10).plain == "█" * 10


# -- take() against a real store ----------------------------------------------------------------
def test_take_reads_a_real_store(app: jobrun.App, store_path: str) -> None:
    @app.task
    def ok(n: int) -> int:
        return n

    @app.task(queue="mail", max_attempts=3)
    def bounce(to: str) -> None:
        raise jobrun.Permanent(f"no such mailbox {to}")

    @app.task(queue="mail")
    def later() -> None:
        raise jobrun.Retry(delay=3600)

    # Given: 6 jobs succeeded, 2 dead and 1 retrying, through a real service.
    for i in range(6):
        ok.enqueue(i)
    bounce.enqueue("a@x")
    bounce.enqueue("b@x")
    later.enqueue()
    jobrun.testing.run_until_idle(app)
    # and, not run: 2 queued in a paused queue, 1 scheduled for later.
    app.store.set_paused("reports", True)
    enqueued_at = clock.now()
    app.enqueue(ok.name, args=[1], queue="reports")
    app.enqueue(ok.name, args=[2], queue="reports")
    ok.options(delay=600).enqueue(3)
    settings = Settings(queues={"reports": QueueConfig("reports", concurrency=3)},
                        cron=(CronEntry("tick", every=30.0, task=ok.name),))

    # When: a snapshot is taken a second later, on a read-only connection.
    now = clock.now() + 1
    store = SqliteStore(store_path, readonly=True)
    snap = take(store, now=now, settings=settings)

    # Then: every number is there.
    q = {r.name: r for r in snap.queues}
    assert set(q) == {"default", "mail", "reports"}
    assert (q["default"].succeeded_hour, q["default"].dead_hour, q["default"].scheduled) == \
        (6, 0, 1)
    assert q["default"].throughput * 60 == pytest.approx(6, rel=0.1)
    assert q["default"].failure_rate == 0.0
    assert (q["mail"].dead, q["mail"].retrying, q["mail"].dead_hour) == (2, 1, 2)
    assert q["mail"].failure_rate == 1.0
    assert q["reports"].paused and q["reports"].queued == 2 and q["reports"].cap == 3
    assert q["reports"].oldest_age == pytest.approx(now - enqueued_at, abs=0.5)
    assert (snap.dead_total, snap.dead_hour, sum(snap.spark)) == (2, 2, 8)
    assert snap.throughput * 60 == pytest.approx(8, rel=0.1)
    assert [f.state for f in snap.failures].count("dead") == 2
    assert {f.message for f in snap.failures} >= {"no such mailbox a@x", "no such mailbox b@x"}
    assert [f.error_type for f in snap.failures if f.state == "retrying"] == ["Retry"]
    assert snap.running == () and snap.services == ()
    assert snap.cron[0].name == "tick" and 0 < snap.cron[0].next_at - now <= 30  # type: ignore
    # An hour later nothing finished recently; the counts stay.
    later_snap = take(store, now=now + 7200, settings=settings)
    lq = {r.name: r for r in later_snap.queues}
    assert lq["mail"].failure_rate is None and lq["mail"].dead == 2
    assert later_snap.throughput == 0 and sum(later_snap.spark) == 0
    assert_fits(draw(snap))
    store.close()


def test_a_kept_window_reads_only_new_rows_and_agrees(app: jobrun.App, store_path: str) -> None:
    @app.task
    def ok() -> None: ...

    app.store  # noqa: B018 - the file exists from here on
    store = SqliteStore(store_path, readonly=True)
    window = Window()
    for rnd in range(3):
        for _ in range(4):
            ok.enqueue()
        jobrun.testing.run_until_idle(app)
        now = clock.now() + 0.5
        kept = take(store, now=now, window=window)
        fresh = take(store, now=now)
        assert kept.queues == fresh.queues and kept.spark == fresh.spark
        assert kept.queues[0].succeeded_hour == 4 * (rnd + 1)
    store.close()


def test_live_services_and_the_leader(app: jobrun.App, store_path: str) -> None:
    app.settings = Settings(queues={"default": QueueConfig("default", concurrency=5)})
    app.start()
    try:
        wait_for(lambda: current_leader(os.path.realpath(store_path)), 10, "a leader")
        snap = take(SqliteStore(store_path, readonly=True), now=clock.now())
    finally:
        app.stop()
    (svc,) = snap.services
    assert svc.pid == os.getpid() and svc.leader and ("default", 5) in svc.queues
    assert {r.name: r.cap for r in snap.queues}["default"] == 5


def test_queries_use_indexes_only(store_path: str) -> None:
    SqliteStore(store_path).close()  # a new store at the current schema
    store = SqliteStore(store_path, readonly=True)
    params = {"width": 5.0, "since": 0.0, "until": 1.0, "limit": 1, "queue": "q", "entry": "e"}
    lists = {name for name, _ in browse.READS.values()}
    for name, sql in DASHBOARD.items():
        if name not in lists and name != "top_queues":
            plan = [r[-1] for r in store.connection().execute(
                "EXPLAIN QUERY PLAN " + sql, params)]
            assert not [p for p in plan if re.fullmatch(r"SCAN jobs", p)], (name, plan)
    # The console's lists: each state's read, with and without a queue and a text filter.
    for state, (name, _) in browse.READS.items():
        sql = DASHBOARD[name]
        for queue, text in ((None, None), ("q", "x")):
            params = {"state": state, "queue": queue, "text": text, "k": 1.0, "id": 10,
                      "limit": 100, "scan": 1000, "args": 1}
            plan = [r[-1] for r in store.connection().execute("EXPLAIN QUERY PLAN " + sql,
                                                              params)]
            assert not [p for p in plan if re.fullmatch(r"SCAN (jobs|j)", p)], (state, plan)
            # a range of an index, or a whole partial index (running, dead, cancelled: the
            # few kept)
            assert any(p.startswith("SEARCH jobs USING") or "jobs_running" in p
                       or "jobs_dead" in p or "jobs_cancelled" in p for p in plan), (state, plan)
    store.close()


def test_once_prints_one_frame(app: jobrun.App, store_path: str) -> None:
    app.enqueue("nowhere:task", queue="default")
    out = io.StringIO()
    run(store_path, None, once=True, console=Console(file=out, width=80, height=24))
    lines = out.getvalue().splitlines()
    assert_fits(lines)
    assert any(ln.split()[:2] == ["default", "1"] for ln in lines)


# -- the real command in a terminal ---------------------------------------------------------------
CONSOLE_TASKS = '''
import os
import time

import jobrun

app = jobrun.App()


@app.task(max_attempts=1)
def fail_once(marker: str, flag: str, tag: str) -> str:
    """Fails the first time; then runs until the test lets it go (or a minute passes)."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise ValueError(f"first try fails for {tag}")
    deadline = time.monotonic() + 60
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.05)
    return f"done {tag}"


@app.task(max_attempts=1)
def other() -> None:
    raise KeyError("another failure")
'''


@pytest.mark.slow
def test_top_in_a_terminal(tmp_path: Path) -> None:
    """The console in a real terminal: filter to a dead job, open it, see its error, retry it
    (y confirms), see it run and succeed, go back, quit."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    (tmp_path / "toptasks.py").write_text(CONSOLE_TASKS, encoding="utf-8")
    cfg = tmp_path / "jobrun.toml"
    cfg.write_text('[jobrun]\nstore = "jobs.db"\nimport = ["toptasks"]\nshutdown_timeout = 5\n'
                   "[queues.default]\nconcurrency = 2\n", encoding="utf-8")
    flag, status = tmp_path / "let-go", tmp_path / "top-status"
    producer = jobrun.App(str(tmp_path / "jobs.db"))
    job = producer.enqueue("toptasks:fail_once",
                           args=[str(tmp_path / "marker"), str(flag), "needle-42"],
                           max_attempts=1, allow_unknown=True)
    others = [producer.enqueue("toptasks:other", max_attempts=1, allow_unknown=True)
              for _ in range(3)]
    log = open(tmp_path / "service.log", "wb")
    service = subprocess.Popen([*JOBRUN, "start", "--config", str(cfg)], cwd=tmp_path,
                               stdout=log, stderr=subprocess.STDOUT)
    tmux = ["tmux", "-L", f"jobrun-test-{os.getpid()}-{id(tmp_path)}", "-f", "/dev/null"]

    def pane() -> str:
        if status.exists():  # top ended before it was asked to
            raise AssertionError(f"top exited early ({status.read_text().strip()})")
        return subprocess.run([*tmux, "capture-pane", "-p", "-t", "top"], capture_output=True,
                              text=True).stdout

    last = [""]

    def showing(*texts: str) -> str:
        last[0] = screen = pane()
        return screen if all(t in screen for t in texts) else ""

    def keys(*k: str) -> None:
        subprocess.run([*tmux, "send-keys", "-t", "top", *k], check=True)

    try:
        wait_for(lambda: all(j.refresh().state == "dead" for j in [job, *others]), 30,
                 "the jobs to die")
        # Given: dead jobs, and `jobrun top` in a 100x30 terminal.
        top = f"{shlex.quote(sys.executable)} -m jobrun.cli top --config {shlex.quote(str(cfg))}"
        subprocess.run([*tmux, "new-session", "-d", "-x", "100", "-y", "30", "-s", "top",
                        "-c", str(tmp_path),
                        f"{top}; echo $? > {shlex.quote(str(status))}"], check=True)
        screen = str(wait_for(lambda: showing("jobs dead", "4 shown", "services 1"), 30,
                              "the dead jobs"))
        lines = screen.splitlines()
        assert len(lines) <= 30 and all(len(ln) <= 100 for ln in lines)
        # When: / filters to the one dead job by its argument text.
        keys("/")
        wait_for(lambda: showing("enter applies"), 10, "the filter box")
        keys("-l", "needle")
        keys("Enter")
        # (a frame captured while the list redraws can hold the status line and old rows:
        # look again until the list itself is the filtered one)
        screen = str(wait_for(lambda: (s := showing("filter 'needle'", "1 shown")) and
                              "toptasks:other" not in s and s, 10, "the filter"))
        assert "toptasks:fail_once" in screen and "toptasks:other" not in screen
        # And: enter opens it, with its error and traceback.
        keys("Enter")
        wait_for(lambda: showing(f"job {job.id}", "first try fails for needle-42",
                                 "Traceback"), 10, "the job's error")
        # And: r asks, y retries; the job runs, then succeeds once let go.
        keys("r")
        wait_for(lambda: showing("y confirms"), 10, "the question")
        keys("y")
        wait_for(lambda: showing(f"job {job.id}", "running"), 30, "the job to run")
        flag.touch()
        wait_for(lambda: showing("succeeded", "done needle-42"), 30, "the job to succeed")
        # Then: escape goes back, q quits cleanly.
        keys("Escape")
        wait_for(lambda: showing("jobs dead", "filter 'needle'"), 10, "the list again")
        keys("q")
        wait_for(lambda: status.exists() and status.read_text().strip(), 10, "top to exit")
        assert status.read_text().strip() == "0"
        wait_for(lambda: subprocess.run([*tmux, "has-session", "-t", "top"],
                                        capture_output=True).returncode != 0, 10,
                 "the terminal to close")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the screen:\n{last[0]}") from exc
    finally:
        flag.touch()
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(30)
        finally:
            if service.poll() is None:
                service.kill()
            log.close()
            producer.close()


SLOW_TASKS = '''
import os
import time

import jobrun

app = jobrun.App()


@app.task
def slow(flag: str) -> None:
    """Runs until the test lets it go (or a minute passes)."""
    deadline = time.monotonic() + 60
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.05)
'''


@pytest.mark.slow
def test_top_with_stderr_elsewhere_is_the_dashboard(tmp_path: Path) -> None:
    """`jobrun top 2> log` in a terminal: Textual draws on stderr, so the read-only rich
    dashboard runs on stdout instead (q quits)."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    (tmp_path / "toptasks.py").write_text(SLOW_TASKS, encoding="utf-8")
    cfg = tmp_path / "jobrun.toml"
    cfg.write_text('[jobrun]\nstore = "jobs.db"\nimport = ["toptasks"]\nshutdown_timeout = 5\n'
                   "[queues.default]\nconcurrency = 2\n", encoding="utf-8")
    flag, status, err = tmp_path / "let-go", tmp_path / "top-status", tmp_path / "top.err"
    producer = jobrun.App(str(tmp_path / "jobs.db"))
    for _ in range(4):
        producer.enqueue("toptasks:slow", args=[str(flag)], queue="default")
    log = open(tmp_path / "service.log", "wb")
    service = subprocess.Popen([*JOBRUN, "start", "--config", str(cfg)], cwd=tmp_path,
                               stdout=log, stderr=subprocess.STDOUT)
    tmux = ["tmux", "-L", f"jobrun-test-{os.getpid()}-{id(tmp_path)}", "-f", "/dev/null"]

    def pane() -> str:
        if status.exists():  # top ended before it was asked to
            raise AssertionError(f"top exited early ({status.read_text().strip()}): "
                                 + err.read_text())
        return subprocess.run([*tmux, "capture-pane", "-p", "-t", "top"], capture_output=True,
                              text=True).stdout

    def showing(text: str) -> str:
        ok = "toptasks:slow" in text and "running 2" in text and \
            re.search(r"^default .* 2/2 ", text, re.M)
        return text if ok else ""

    try:
        # Given: a service working on slow jobs, and `jobrun top` in an 80x24 terminal.
        top = f"{shlex.quote(sys.executable)} -m jobrun.cli top --config {shlex.quote(str(cfg))}"
        subprocess.run([*tmux, "new-session", "-d", "-x", "80", "-y", "24", "-s", "top",
                        "-c", str(tmp_path),
                        f"{top} 2> {shlex.quote(str(err))}; echo $? > {shlex.quote(str(status))}"],
                       check=True)
        # Then: the queue and its running jobs show up.
        screen = str(wait_for(lambda: showing(pane()), 30, "the queue and its running jobs"))
        lines = screen.splitlines()
        assert len(lines) <= 24 and all(len(ln) <= 80 for ln in lines)
        assert "services 1" in screen and "leader" in screen
        # When: q is pressed, top ends at once and cleanly.
        subprocess.run([*tmux, "send-keys", "-t", "top", "q"], check=True)
        wait_for(lambda: status.exists() and status.read_text().strip(), 10, "top to exit")
        assert status.read_text().strip() == "0"
        wait_for(lambda: subprocess.run([*tmux, "has-session", "-t", "top"],
                                        capture_output=True).returncode != 0, 10,
                 "the terminal to close")
    finally:
        flag.touch()
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(30)
        finally:
            if service.poll() is None:
                service.kill()
            log.close()
            producer.close()


def test_waiting_workflows_show(app: jobrun.App, store_path: str) -> None:
    """A workflow sleeping in the store holds no slot; the dashboard counts it."""
    @app.workflow
    def nap() -> str:
        jobrun.sleep(3600)
        return "awake"

    job = nap.enqueue()
    app.start()
    try:
        wait_for(lambda: app.store.steps(job.id) and job.refresh().state == "scheduled", 20,
                 "the workflow to sleep")
    finally:
        app.stop()
    store = SqliteStore(store_path, readonly=True)
    snap = take(store, now=clock.now())
    store.close()
    assert snap.waiting == (("sleep", 1),)
    text = "\n".join(draw(snap))
    assert "workflows waiting 1 (sleep 1)" in text


def test_a_cancelled_workflow_is_not_counted_as_waiting(app: jobrun.App, store_path: str) -> None:
    @app.workflow
    def nap2() -> str:
        jobrun.sleep(3600)
        return "awake"

    job = nap2.enqueue()
    app.start()
    try:
        wait_for(lambda: app.store.steps(job.id) and job.refresh().state == "scheduled", 20,
                 "the workflow to sleep")
    finally:
        app.stop()
    job.cancel()
    store = SqliteStore(store_path, readonly=True)
    snap = take(store, now=clock.now())
    store.close()
    assert snap.waiting == ()
