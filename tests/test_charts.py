"""The console's overview: per-queue finished and failed per minute over the hour, run-time
percentiles, read from a real store (rows written with known times, `now` injected); cron's
last and next fires in their zone and UTC; drawn as text in 80 columns."""

from __future__ import annotations

import io
import json

import apsw
from rich.console import Console

from jobrun.config import CronEntry, Settings
from jobrun.store.sqlite import SqliteStore
from jobrun.tui.charts import overview, runtime
from jobrun.tui.snapshot import take
from jobrun.tui.window import Window

NOW = 1_800_000_000.0


def write(path: str, rows: list[tuple[str, str, float, float]]) -> None:
    """Finished jobs: (queue, state, started_at, finished_at)."""
    SqliteStore(path).close()
    conn = apsw.Connection(path)
    with conn:
        conn.executemany(
            "INSERT INTO jobs (task, queue, args, state, attempts, max_attempts, run_at, "
            "enqueued_at, started_at, finished_at) VALUES ('t', ?, '[]', ?, 1, 1, ?, ?, ?, ?)",
            [(q, st, s, s, s, f) for q, st, s, f in rows])
    conn.close()


def test_minutes_and_percentiles_from_the_store(tmp_path: object) -> None:
    path = f"{tmp_path}/jobs.db"
    rows = []
    # mail: 10 jobs two minutes ago, 9 taking 0.1 s and one 4 s; one dead 30 minutes ago
    for i in range(10):
        rows.append(("mail", "succeeded", NOW - 130, NOW - 130 + (4.0 if i == 9 else 0.1)))
    rows.append(("mail", "dead", NOW - 1802, NOW - 1800))
    rows.append(("mail", "succeeded", NOW - 7200, NOW - 7199))  # two hours ago: not counted
    rows.append(("web", "succeeded", NOW - 30, NOW - 29.5))
    write(path, rows)
    store = SqliteStore(path, readonly=True)
    snap = take(store, now=NOW)
    q = {r.name: r for r in snap.queues}
    mail = q["mail"]
    assert len(mail.done_minutes) == 60 and sum(mail.done_minutes) == 10
    assert mail.done_minutes[-3] == 10  # finished 2m10s and 2m06s ago: the third minute back
    assert sum(mail.dead_minutes) == 1 and mail.dead_minutes[-31] == 1
    assert mail.p50 == 0.1 and mail.p95 == 4.0
    assert q["web"].p50 == q["web"].p95 == 0.5 and q["web"].done_minutes[-1] == 1
    # A kept window, read again later, agrees with a fresh read.
    window = Window()
    take(store, now=NOW - 60, window=window)
    kept, fresh = take(store, now=NOW, window=window), take(store, now=NOW)
    assert kept.queues == fresh.queues
    store.close()


def test_overview_shows_charts_services_and_cron_in_zone_and_utc(tmp_path: object) -> None:
    path = f"{tmp_path}/jobs.db"
    write(path, [("mail", "succeeded", NOW - 100, NOW - 99.988)])
    conn = apsw.Connection(path)
    with conn:  # the last fire the scheduler recorded: 2 a.m. in Berlin (01:00 UTC)
        conn.execute("INSERT INTO cron_fires (entry, fire_at) VALUES ('nightly', 1799974800)")
    conn.close()
    settings = Settings(cron=(CronEntry("nightly", schedule="0 2 * * *",
                                        timezone="Europe/Berlin", task="app:nightly"),))
    store = SqliteStore(path, readonly=True)
    snap = take(store, now=NOW, settings=settings)
    store.close()
    (cron,) = snap.cron
    assert cron.last_at == 1799974800 and cron.timezone == "Europe/Berlin"
    out = io.StringIO()
    Console(file=out, width=80, no_color=True).print(overview(snap, 80))
    lines = out.getvalue().splitlines()
    assert all(len(ln) <= 80 for ln in lines), lines
    text = "\n".join(lines)
    assert "mail  hour: 1 done, 0 failed  run time p50 12ms p95 12ms" in text
    assert "last 2027-01-15 02:00 CET (01:00Z)" in text
    assert "next 2027-01-16 02:00 CET (01:00Z)" in text
    assert "none alive" in text
    assert runtime(None) == "-" and runtime(75.0) == "1m15s"
    json.dumps(cron.__dict__)  # plain data


def test_a_kept_window_rereads_only_the_seconds_that_changed(tmp_path: object) -> None:
    """A busy store finishes thousands of jobs a second: a refresh counts the margin per
    second from the index and reads the rows of the changed seconds only, and still agrees
    with a fresh read (a job that landed late in the margin, a job pruned, one just now)."""
    path = f"{tmp_path}/jobs.db"
    rows = [("mail", "succeeded", NOW - 60 + i * 0.25, NOW - 60 + i * 0.25 + 0.01)
            for i in range(240)]  # a job every quarter second for the last minute
    write(path, rows)
    store = SqliteStore(path, readonly=True)
    window = Window()
    take(store, now=NOW + 0.5, window=window)
    write(path, [("mail", "dead", NOW - 8.5, NOW - 8.4), ("web", "succeeded", NOW + 0.6,
                                                            NOW + 0.7)])
    conn = apsw.Connection(path)
    with conn:  # pruned meanwhile: one of the jobs 5 s back
        conn.execute("DELETE FROM jobs WHERE id = (SELECT min(id) FROM jobs "
                     "WHERE finished_at >= ? AND finished_at < ?)", (NOW - 5, NOW - 4))
    conn.close()
    asked: list[tuple[float, float]] = []
    with store.dashboard() as read:
        def spy(name: str, params: dict[str, object]) -> list[dict[str, object]]:
            if name == "top_finished":
                asked.append((float(params["since"]), float(params["until"])))  # type: ignore
            return read(name, params)
        window.update(spy, NOW + 1.0)
    assert asked == [(NOW - 9, NOW - 8), (NOW - 5, NOW - 4), (NOW, NOW + 1.0)], asked
    kept, fresh = take(store, now=NOW + 1.0, window=window), take(store, now=NOW + 1.0)
    assert kept.queues == fresh.queues
    q = {r.name: r for r in kept.queues}
    assert sum(q["mail"].done_minutes) == 239 and sum(q["mail"].dead_minutes) == 1
    assert sum(q["web"].done_minutes) == 1
    store.close()
