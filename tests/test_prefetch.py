"""Process queues with `prefetch`: jobs claimed ahead run in batches, each with its own
timeout; a prefetched job cancelled before it starts never runs; a drain hands back what
has not started without counting it."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobrun
from conftest import wait_for

TASKS = textwrap.dedent('''
    import os, time
    import jobrun

    app = jobrun.App()

    @app.task(queue="cpu")
    def quick(i):
        return os.getpid()

    @app.task(queue="cpu")
    def stamp(seconds, path):
        with open(path, "w") as f:
            f.write(repr(time.time()))
        time.sleep(seconds)

    @app.task(queue="cpu", timeout=1.5, max_attempts=1)
    def nap(seconds, marker=None):
        if marker:
            open(marker, "a").write("ran\\n")
        time.sleep(seconds)
        return seconds
''')


def make_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, queue: str) -> jobrun.App:
    mod = f"prefetch_tasks_{tmp_path.name}"
    (tmp_path / f"{mod}.py").write_text(TASKS)
    cfg = tmp_path / "jobrun.toml"
    cfg.write_text(f'[jobrun]\nstore = "jobs.db"\nimport = ["{mod}"]\nshutdown_timeout = 1\n'
                   f'[queues.cpu]\nexecutor = "process"\n{queue}')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("JOBRUN_CONFIG", str(cfg))
    __import__(mod)
    a = jobrun.App.from_config(str(cfg))
    a.mod = mod  # type: ignore[attr-defined]
    return a


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[jobrun.App]:
    a = make_app(tmp_path, monkeypatch, "concurrency = 1\nprefetch = 6\n")
    yield a
    a.close()


def states(app: jobrun.App) -> dict[str, int]:
    return {s: n for s, n in app.store.read("SELECT state, count(*) FROM jobs GROUP BY state")}


def test_prefetched_batches_run_every_job(app: jobrun.App) -> None:
    mod = app.mod  # type: ignore[attr-defined]
    jobs = app.enqueue_many([jobrun.Call(f"{mod}:quick", (i,)) for i in range(200)])
    app.start()
    wait_for(lambda: states(app).get("succeeded") == 200, 30, "200 jobs")
    pids = {j.result() for j in jobs}
    assert len(pids) == 1  # one child (concurrency 1) ran them all, in batches
    assert all(j.refresh().attempts == 1 for j in jobs)


def test_each_prefetched_job_times_out_from_its_own_start(app: jobrun.App) -> None:
    mod = app.mod  # type: ignore[attr-defined]
    # Four 1 s naps in one batch take 4 s in all, but each is within its 1.5 s timeout.
    jobs = app.enqueue_many([jobrun.Call(f"{mod}:nap", (1.0,)) for _ in range(4)])
    app.start()
    wait_for(lambda: sum(states(app).get(s, 0) for s in ("succeeded", "dead")) == 4, 30,
             "the naps")
    assert [j.refresh().state for j in jobs] == ["succeeded"] * 4


def test_a_prefetched_job_cancelled_before_it_starts_never_runs(app: jobrun.App,
                                                                tmp_path: Path) -> None:
    mod = app.mod  # type: ignore[attr-defined]
    marker = str(tmp_path / "ran.txt")
    first = app.enqueue(f"{mod}:nap", args=[1.2])
    later = app.enqueue(f"{mod}:nap", args=[0.0, marker])
    app.start()
    wait_for(lambda: app.job(later.id).state == "running", 10, "the second job to be claimed")
    assert app.job(first.id).state == "running"  # both claimed: one runs, one waits its turn
    later.cancel()
    wait_for(lambda: app.job(first.id).state == "succeeded", 10, "the first job")
    app.stop()
    assert app.job(later.id).state == "cancelled"
    assert not Path(marker).exists()


def test_drain_hands_back_unstarted_prefetched_jobs_uncounted(app: jobrun.App) -> None:
    mod = app.mod  # type: ignore[attr-defined]
    jobs = [app.enqueue(f"{mod}:nap", args=[1.2]) for _ in range(3)]
    app.start()
    wait_for(lambda: states(app).get("running") == 3, 10, "three claimed")
    app.stop(timeout=0.2)
    recs = [j.refresh().record for j in jobs]
    assert sorted(r.state.value for r in recs) == ["queued", "queued", "queued"]
    assert all(r.attempts == 0 for r in recs)


def test_held_jobs_cancelled_with_the_running_one_never_start(app: jobrun.App,
                                                              tmp_path: Path) -> None:
    """Found by a stranger: cancelling the running job stops its child, and the held jobs of
    its batch went to a new child as they were, cancelled too, and ran there (attempts
    counted). They come back unstarted: never run, no attempt."""
    mod = app.mod  # type: ignore[attr-defined]
    markers = [str(tmp_path / f"ran{i}.txt") for i in range(4)]
    jobs = [app.enqueue(f"{mod}:nap", args=[1.4, m]) for m in markers]
    app.start()
    wait_for(lambda: Path(markers[0]).exists(), 10, "the first job to start")
    wait_for(lambda: all(j.refresh().state.value == "running" for j in jobs), 10,
             "the rest held in its batch")
    for j in reversed(jobs):  # the held ones first: the cancels reach the service together
        j.cancel()
    wait_for(lambda: all(j.refresh().state.value == "cancelled" and j.refresh().record.holder
                         is None for j in jobs), 15, "every cancel to land")
    app.stop()
    assert [Path(m).exists() for m in markers] == [True, False, False, False]
    assert [j.refresh().attempts for j in jobs] == [1, 0, 0, 0]


def test_jobs_claimed_for_free_children_start_at_once(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a stranger: the second job claimed for the second free child went in the
    first child's batch, behind the first job, while a held job ran in the second child: it
    was counted and said started seconds before it ran. Each starts now, in its own child."""
    app = make_app(tmp_path, monkeypatch, "concurrency = 2\nprefetch = 20\n")
    try:
        mod = app.mod  # type: ignore[attr-defined]
        for r in range(2):
            stamps = [tmp_path / f"s{r}-{i}" for i in range(12)]
            jobs = [app.enqueue(f"{mod}:stamp", args=[0.8, str(p)]) for p in stamps]
            app.start()
            try:
                wait_for(lambda js=jobs: all(j.refresh().state.value == "succeeded"
                                             for j in js), 30, "the jobs")
            finally:
                app.stop()
            first, second = (float(stamps[i].read_text()) for i in range(2))
            assert abs(first - second) < 0.6, (r, first, second)  # side by side, not 0.8 s apart
    finally:
        app.close()
