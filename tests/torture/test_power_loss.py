"""Power loss: workloads run in a forked process on the crash VFS (crashvfs.py), the power
fails at a random write, sync or delete, the files are rebuilt as a disk may hold them (the
last synced state plus a random subset of the later writes, some torn at 512-byte sectors),
and the store is then opened by an ordinary jobrun (default VFS) and checked:

- `PRAGMA integrity_check` ok, and the store opens (migrating if need be) with no manual step;
- nothing half done: every job in one valid state with the columns that state implies (a
  succeeded job has its result), an `enqueue_many` batch all there or not at all, a `once()`
  record exactly when its block's own write is there, a cron fire exactly with its job;
- durability "full": every enqueue, completion, once() block, cron fire and migration
  acknowledged to its caller before the loss is there, and no job id is given twice;
  "normal": every one acknowledged before the last sync of the WAL (a checkpoint) is there;
- a fresh service takes back every job left running and runs it again; the store ends idle.

Each workload first runs to its end (the power then fails idle, which counts its events),
then loses power at random events of that range: 3 per workload and durability in the normal
run (72 losses in all with the idle ones), 40 with --long (738). Each test prints what held.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import apsw
import pytest
from crashvfs import Run, Work, crash
from torture_util import integrity, plain

import jobrun
from jobrun import catalog, clock, enqueue, testing
from jobrun.config import CronEntry, Settings, parse
from jobrun.lock import HolderLock
from jobrun.model import NewJob, Outcome
from jobrun.scheduler import Scheduler
from jobrun.store import open_store
from jobrun.store.migrations import SCHEMA_VERSION, STEPS
from jobrun.store.sqlite import SqliteStore

pytestmark = pytest.mark.torture
DURABILITIES = ("normal", "full")
FINISHED = ("succeeded", "dead", "cancelled")
TALLY: Counter[str] = Counter()  # what one test saw, for its closing line

_reg = jobrun.App()  # registers the tasks (every App here is built on a test's own store)


@_reg.task(retry_base=0.01, retry_cap=0.02)
def pl_work(i: int, pad: str = "") -> int:
    return i * 2


@_reg.task(retry_base=0.01, retry_cap=0.02)
def pl_flaky(i: int) -> int:
    if jobrun.context().attempt < 2:
        raise RuntimeError("flaky: fails its first attempt")
    return i * 2


@_reg.task(max_attempts=2, retry_base=0.01, retry_cap=0.02)
def pl_doomed(i: int) -> int:
    raise RuntimeError("doomed: always fails")


@_reg.task(retry_base=0.01, retry_cap=0.02)
def pl_once(i: int) -> int:
    """A job whose side effect is a ledger row, done once per job whatever reruns it."""
    with jobrun.once(f"job-op:{i}") as op:
        if not op.done:
            op.connection.execute("INSERT INTO ledger VALUES (?, ?)", (op.key, "j" * i * 40))
    return i * 2


TASKS = (pl_work.name, pl_flaky.name, pl_doomed.name)


@_reg.step(max_attempts=3)
def pl_step(i: int) -> int:
    return i + 1


@_reg.workflow(max_attempts=5)
def pl_flow(i: int) -> int:
    """Steps, a sleep, an event, a gather of two children: every kind of workflow record."""
    a = pl_step(i)
    jobrun.sleep(0.02)
    got = jobrun.wait_event(f"go:{i}", timeout=30)
    kids = jobrun.gather([pl_work.call(a), pl_work.call(a + 1)])
    return int(pl_step(sum(kids))) + (0 if got is None else int(got))


def settings(durability: str, **extra: Any) -> Settings:
    s = parse(f'[jobrun]\ndurability = "{durability}"\npoll = "20ms"\n'
              '[queues.default]\nconcurrency = 4\nmax_attempts = 3\n')[0]
    return s if not extra else Settings(**{**s.__dict__, **extra})


# -- checks shared by the workloads -------------------------------------------------------------
COLS = ("id", "task", "state", "args", "result", "errors", "attempts", "max_attempts", "holder",
        "token", "lease_until", "started_at", "finished_at", "run_at")


def jobs(db: apsw.Connection) -> dict[int, dict[str, Any]]:
    """Every job, each checked to be in exactly one valid state (nothing half done)."""
    out = {}
    for row in db.execute(f"SELECT {', '.join(COLS)} FROM jobs"):
        j = dict(zip(COLS, row))
        j["args"], j["errors"] = json.loads(j["args"]), json.loads(j["errors"])
        s = j["state"]
        assert s in ("scheduled", "queued", "running", "retrying", *FINISHED), j
        if s == "running":
            # started_at is NULL for a held job (claimed ahead of a free worker, not begun).
            assert None not in (j["holder"], j["token"], j["lease_until"]), j
            held = j["started_at"] is None  # its attempt counts once it begins
            assert j["finished_at"] is None and j["attempts"] >= (0 if held else 1), j
            assert not held or j["attempts"] < j["max_attempts"], j
        else:
            assert j["holder"] is None and j["lease_until"] is None, j
        if s == "succeeded":
            assert j["result"] is not None and j["finished_at"] is not None, j
            json.loads(j["result"])
        if s in ("dead", "cancelled"):
            assert j["finished_at"] is not None, j
        if s == "retrying":
            assert j["errors"] and j["finished_at"] is None, j
        if s in ("scheduled", "queued"):
            assert j["finished_at"] is None, j
        out[j["id"]] = j
    return out


def reopen(path: str) -> dict[int, dict[str, Any]]:
    """The store after the loss, with none of jobrun's code: integrity, then every job."""
    db = plain(path)
    try:
        assert integrity(db) == "ok"
        if int(db.execute("PRAGMA user_version").get) == 0:  # never created: nothing acked
            return {}
        return jobs(db)
    finally:
        db.close()


def fresh_service(path: str, durability: str) -> dict[int, dict[str, Any]]:
    """A fresh jobrun opens the store (no manual step), takes back every job left running and
    runs it again, until the store is idle."""
    SqliteStore(path).close()
    before = reopen(path)
    app = jobrun.App(path, settings=settings(durability))
    try:
        testing.run_until_idle(app, timeout=30)
    finally:
        app.close()
    after = reopen(path)
    for i, j in before.items():
        a = after[i]
        if j["state"] == "running":
            TALLY["running jobs rescued"] += 1
            assert a["state"] != "running", a
            assert a["attempts"] > j["attempts"] or a["state"] == "dead", (j, a)
            if j["started_at"] is not None:  # a held one its service's began log shows
                # never began goes back unspent, without an error (jobrun/began.py)
                assert any(e.get("type") == "WorkerLost" for e in a["errors"]), a
    left = [j for j in after.values() if j["state"] not in FINISHED]
    assert not left, left[:3]
    return after


def no_id_reuse(path: str, durability: str, acked_ids: list[int]) -> None:
    """With "full" an acknowledged id stays taken: the next job gets a higher one."""
    if durability != "full" or not acked_ids:
        return
    app = jobrun.App(path, settings=settings(durability))
    try:
        new = app.enqueue(pl_work.name, args=[0]).id
    finally:
        app.close()
    assert new > max(acked_ids), (new, max(acked_ids))


def checkpoint(w: Work, store: SqliteStore) -> None:
    """What an autocheckpoint does on a big WAL, here every few operations."""
    store.read("PRAGMA wal_checkpoint(PASSIVE)")
    w.note("K")


# -- workloads ---------------------------------------------------------------------------------
def w_enqueue(w: Work) -> None:
    app = jobrun.App(w.path, settings=settings(w.durability))
    keyed: dict[str, tuple[int, str]] = {}
    for n in range(40):
        tag = f"t{n}"
        key = f"k{n % 6}" if w.rng.random() < 0.2 else None
        w.note(f"A {tag}")
        job = app.enqueue(pl_work.name, args=w.payload(tag), key=key)
        if key is not None:  # de-duplicated onto the unfinished job of that key
            first = keyed.setdefault(key, (job.id, tag))
            tag = first[1] if first[0] == job.id else tag
            keyed[key] = (job.id, tag)
        w.note(f"E {job.id} {tag}")
        if n % 12 == 11:
            checkpoint(w, app.store)
    app.close()


def w_enqueue_many(w: Work) -> None:
    app = jobrun.App(w.path, settings=settings(w.durability))
    for b in range(10):
        tags = [f"b{b}.{k}" for k in range(w.rng.randrange(2, 25))]
        w.note(f"A {','.join(tags)}")
        done = app.enqueue_many([jobrun.Call(pl_work.name, tuple(w.payload(t))) for t in tags])
        for job, t in zip(done, tags):
            w.note(f"E {job.id} {t}")
        if b % 4 == 3:
            checkpoint(w, app.store)
    app.close()


def c_enqueue(path: str, durability: str, run: Run) -> None:
    rows = reopen(path)
    attempted = [a[0].split(",") for a in run.all("A")]
    tags = {t for batch in attempted for t in batch}
    by_tag = {j["args"][0]: i for i, j in rows.items()}
    assert set(by_tag) <= tags, "a job no enqueue made"
    for batch in attempted:  # one transaction: all of a batch or none of it
        there = [t in by_tag for t in batch]
        assert all(there) or not any(there), (batch, there)
    must = run.acks("E", durability)
    lost = [(i, t) for i, t in must if by_tag.get(t) != int(i)]
    assert not lost, f"acknowledged enqueues lost: {lost[:5]} of {len(must)}"
    TALLY["enqueues rolled back (acknowledged after the last sync)"] += sum(
        by_tag.get(t) != int(i) for i, t in run.all("E"))
    fresh_service(path, durability)
    no_id_reuse(path, durability, [int(i) for i, _ in run.all("E")])


def p_jobs(n: int) -> Callable[[str, str], None]:
    def prepare(path: str, durability: str) -> None:
        app = jobrun.App(path, settings=settings(durability))
        for i in range(n):
            app.enqueue(TASKS[i % len(TASKS)], args=[i])
        app.close()
    return prepare


def w_worker(w: Work) -> None:
    """The store's own round, driven directly: completions, retries and dead jobs."""
    store = SqliteStore(w.path, durability=w.durability)
    holder = f"{os.getpid()}-power"
    lock = HolderLock(store.path, holder)
    assert lock.acquire()
    pending: list[tuple[Outcome, int]] = []
    for rnd in range(200):
        now = clock.now()
        out = [o for o, _ in pending]
        if pending and w.rng.random() < 0.3:
            applied, claims = store.record_outcomes(out, now=now), []
        else:
            t = store.acquire_round(out, {"default": w.rng.randrange(1, 6)}, holder, now=now,
                                    lease=3600)
            applied, claims = t.applied, t.claims
        for o, attempt in pending:
            if o.token in applied:
                w.note(f"C {o.id} {o.state} {attempt}")
        pending = []
        if not claims and not out:
            break
        for c in claims:
            i = c.args[0]
            if i % 4 == 1 and c.attempt == 1:
                o = Outcome(c.id, c.token, "retrying", run_at=now,
                            error={"type": "Boom", "message": "once", "at": now,
                                   "attempt": c.attempt})
            elif i % 9 == 2:
                o = Outcome(c.id, c.token, "dead", error={"type": "Boom", "message": "never",
                                                         "at": now, "attempt": c.attempt})
            else:
                o = Outcome(c.id, c.token, "succeeded", json.dumps(i * 2))
            pending.append((o, c.attempt))
        if rnd % 10 == 9:
            checkpoint(w, store)
    store.close()


def w_service(w: Work, tasks: tuple[str, ...] = TASKS, n: int = 24) -> None:
    """An embedded service works through jobs; the caller sees each one finish."""
    app = jobrun.App(w.path, settings=settings(w.durability))
    app.start()
    ids = [app.enqueue(tasks[i % len(tasks)], args=[i]).id for i in range(n)]
    for i in ids:
        w.note(f"E {i} -")
    seen: dict[int, str] = {}
    deadline = time.monotonic() + 30
    while len(seen) < len(ids) and time.monotonic() < deadline:
        new = 0
        for job_id, state in app.store.read("SELECT id, state FROM jobs"):
            if state in FINISHED and job_id not in seen:
                seen[job_id] = state
                new += 1
                w.note(f"C {job_id} {state} 0")
        if new and w.rng.random() < 0.4:
            checkpoint(w, app.store)
        time.sleep(0.01)
    assert len(seen) == len(ids), "the service did not finish its jobs"
    app.stop(5)
    app.close()


def c_work(path: str, durability: str, run: Run) -> None:
    rows = reopen(path)
    must = run.acks("C", durability)
    for i, state, attempt in must:
        j = rows.get(int(i))
        assert j is not None, f"job {i}, acknowledged {state}, lost"
        if state == "retrying":  # that attempt failed: the job went on from there
            assert j["errors"] and j["attempts"] >= int(attempt), (state, j)
            assert not (j["state"] == "running" and j["attempts"] == int(attempt)), j
        else:
            assert j["state"] == state, (f"acknowledged {state} lost", j)
    acked_ids = [int(i) for i, _ in run.all("E")]
    lost = [i for i, _ in run.acks("E", durability) if int(i) not in rows]
    assert not lost, lost
    after = fresh_service(path, durability)
    for j in after.values():
        if j["state"] == "succeeded":
            assert json.loads(j["result"]) == j["args"][0] * 2, j
    no_id_reuse(path, durability, acked_ids)


CRON = (CronEntry("beat", every=10.0, task=pl_work.name, args=(1,)),
        CronEntry("pulse", every=25.0, task=pl_work.name, args=(2,)))
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def w_cron(w: Work) -> None:
    s = settings(w.durability, cron=CRON)
    app = jobrun.App(w.path, settings=s)
    app.store  # noqa: B018 - opened before the scheduler's transactions

    def make(entry: CronEntry, fire: datetime) -> NewJob:
        return enqueue.new_job(entry.task or "", list(entry.args), {}, {"run_at": fire},
                               jobrun.clock.now(), catalog.resolve(None, None, None, s))

    sched = Scheduler(open_store(w.path, durability=s.durability), lambda: s, make, "power")
    assert sched._lock.acquire("power")
    sched.fire_due(T0, starting=True)
    known: set[tuple[str, float]] = set()
    for k in range(1, 30):
        sched.fire_due(T0 + timedelta(seconds=7 * k))
        for entry, at, job_id in sched.store.read("SELECT entry, fire_at, job_id FROM cron_fires"):
            if (entry, at) not in known:
                known.add((entry, at))
                w.note(f"F {entry} {at!r} {job_id}")
        if k % 10 == 9:
            checkpoint(w, app.store)
    sched.stop()
    sched.store.close()
    app.close()


def c_cron(path: str, durability: str, run: Run) -> None:
    rows = reopen(path)
    db = plain(path)
    try:
        fires = {(e, at): j for e, at, j in db.execute("SELECT entry, fire_at, job_id FROM "
                                                        "cron_fires")}
    finally:
        db.close()
    tasks = {e.name: e for e in CRON}
    for (entry, at), job_id in fires.items():  # a fire never exists without its job
        assert job_id is not None and job_id in rows, (entry, at, job_id)
        j = rows[job_id]
        assert j["task"] == tasks[entry].task and j["args"] == list(tasks[entry].args), j
        assert abs(j["run_at"] - at) < 1e-6, (j, at)
    assert sorted(fires.values()) == sorted(rows), "a cron job without its fire"
    for entry, at, job_id in run.acks("F", durability):
        assert fires.get((entry, float(at))) == int(job_id), f"fire {entry} {at} lost"
    fresh_service(path, durability)


def p_ledger(path: str, durability: str) -> None:
    SqliteStore(path).close()
    db = plain(path)
    db.execute("CREATE TABLE ledger (key TEXT PRIMARY KEY, payload TEXT NOT NULL)")
    db.close()


def w_once(w: Work) -> None:
    """once() blocks: the block's own write and the operation's record in one transaction."""
    SqliteStore(w.path, durability=w.durability).close()
    for n in range(30):
        key = f"op{n % 22}"
        try:
            with jobrun.once(key, store=w.path) as op:
                if op.done:
                    continue
                op.connection.execute("INSERT INTO ledger VALUES (?, ?)",
                                      (key, w.payload(key)[1]))
                if n % 7 == 3:
                    raise KeyError("the block fails: nothing is recorded")
        except KeyError:
            continue
        w.note(f"O {key}")


def c_once(path: str, durability: str, run: Run) -> set[str]:
    reopen(path)
    db = plain(path)
    try:
        done = {k for (k,) in db.execute(
            "SELECT key FROM processed_operations WHERE state = 'done'")}
        ledger = {k for (k,) in db.execute("SELECT key FROM ledger")}
    finally:
        db.close()
    assert done == ledger, ("a once() record without its block's write, or the reverse",
                            done ^ ledger)
    lost = [k for (k,) in run.acks("O", durability) if k not in done]
    assert not lost, f"acknowledged once() blocks lost: {lost}"
    return done


def w_once_jobs(w: Work) -> None:
    w_service(w, (pl_once.name,), 16)


def c_once_jobs(path: str, durability: str, run: Run) -> None:
    """once() inside jobs: after the loss and a fresh service, each job's side effect was
    done exactly once (a pending claim of a lost attempt is taken over)."""
    done = c_once(path, durability, run)
    rows = reopen(path)
    for i, state, _ in run.acks("C", durability):
        assert state == "succeeded" and f"job-op:{rows[int(i)]['args'][0]}" in done, i
    after = fresh_service(path, durability)
    assert all(j["state"] == "succeeded" for j in after.values()), after
    done = c_once(path, durability, run)
    assert done == {f"job-op:{j['args'][0]}" for j in after.values()}, done


def p_old_store(path: str, durability: str) -> None:
    """A version-1 store (rollback journal, as an old jobrun left it) with jobs in it."""
    c = apsw.Connection(path)
    c.execute(STEPS[1])
    c.execute("PRAGMA user_version = 1")
    c.executemany("INSERT INTO jobs (task, queue, state, max_attempts, run_at, enqueued_at, "
                  "args) VALUES (?, 'default', 'queued', 3, 0, 0, ?)",
                  [(pl_work.name, json.dumps([i, "p" * (i * 37 % 3000)])) for i in range(150)])
    c.close()


def w_migrate(w: Work) -> None:
    store = SqliteStore(w.path, durability=w.durability)
    w.note("M")
    store.close()
    app = jobrun.App(w.path, settings=settings(w.durability))
    for n in range(8):
        w.note(f"A n{n}")
        w.note(f"E {app.enqueue(pl_work.name, args=[1000 + n]).id} n{n}")
    app.close()


def c_migrate(path: str, durability: str, run: Run) -> None:
    db = plain(path)
    try:
        assert integrity(db) == "ok"
        version = int(db.execute("PRAGMA user_version").get)
        cols = {r[1] for r in db.execute("PRAGMA table_info(jobs)")}
        old = dict(db.execute("SELECT id, args FROM jobs WHERE id <= 150"))
    finally:
        db.close()
    assert version in (1, SCHEMA_VERSION), version  # one transaction: never in between
    assert ("ckey" in cols) == (version == SCHEMA_VERSION), cols
    if run.acks("M", durability):
        assert version == SCHEMA_VERSION, "an acknowledged migration rolled back"
    assert sorted(old) == list(range(1, 151)), "old jobs lost"
    assert all(json.loads(a)[0] == i - 1 for i, a in old.items())
    rows = reopen(path)
    lost = [i for i, _ in run.acks("E", durability) if int(i) not in rows]
    assert not lost, lost
    fresh_service(path, durability)
    no_id_reuse(path, durability, [int(i) for i, _ in run.all("E")])


OLD = 1000.0  # finished_at of the jobs retention prunes


def p_finished(path: str, durability: str) -> None:
    SqliteStore(path).close()
    db = plain(path)
    db.executemany(
        "INSERT INTO jobs (task, queue, state, max_attempts, run_at, enqueued_at, finished_at, "
        "result, args) VALUES (?, 'default', ?, 3, 0, 0, ?, ?, ?)",
        [(pl_work.name, st, fin, "0" if st == "succeeded" else None, json.dumps([i, "r" * 200]))
         for i in range(260)
         for st, fin in [(("succeeded", "dead", "cancelled", "queued")[i % 4],
                          None if i % 4 == 3 else OLD + (i % 2) * 1e9)]])
    db.close()


def w_prune(w: Work) -> None:
    store = SqliteStore(w.path, durability=w.durability)
    app = jobrun.App(w.path, settings=settings(w.durability))
    for n in range(4):
        w.note(f"A p{n}")
        w.note(f"E {app.enqueue(pl_work.name, args=[2000 + n]).id} p{n}")
        w.note(f"P {store.prune(OLD + 1, batch=23)}")
    store.close()
    app.close()


def c_prune(path: str, durability: str, run: Run) -> None:
    rows = reopen(path)
    pruned = bool(run.acks("P", durability))
    for i in range(1, 261):
        j = rows.get(i)
        kind = ("succeeded", "dead", "cancelled", "queued")[(i - 1) % 4]
        old = kind != "queued" and (i - 1) % 2 == 0
        if j is None:
            assert old, f"job {i} ({kind}, not old) was pruned"
            continue
        assert j["state"] == kind and j["args"][0] == i - 1, j
        if pruned:
            assert not old, f"job {i} should have been pruned by an acknowledged prune"
    lost = [i for i, _ in run.acks("E", durability) if int(i) not in rows]
    assert not lost, lost
    fresh_service(path, durability)
    no_id_reuse(path, durability, [int(i) for i, _ in run.all("E")])


def w_workflows(w: Work) -> None:
    """An embedded service runs workflows; their events are sent by the producer."""
    app = jobrun.App(w.path, settings=settings(w.durability))
    app.start()
    ids = [app.enqueue(pl_flow.name, args=[i]).id for i in range(6)]
    for i in ids:
        w.note(f"E {i} -")
    for n in range(6):
        w.note(f"V {app.send_event(f'go:{n}', 100)} go:{n}")
    seen: dict[int, str] = {}
    deadline = time.monotonic() + 30
    while len(seen) < len(ids) and time.monotonic() < deadline:
        for job_id in ids:
            state = app.store.get(job_id).state.value  # type: ignore[union-attr]
            if state in FINISHED and job_id not in seen:
                seen[job_id] = state
                w.note(f"C {job_id} {state} 0")
        time.sleep(0.01)
    assert len(seen) == len(ids), "the service did not finish its workflows"
    app.stop(5)
    app.close()


def c_workflows(path: str, durability: str, run: Run) -> None:
    rows = reopen(path)
    db = plain(path)
    try:
        has = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        steps = list(db.execute("SELECT job_id, seq, state FROM steps")) if "steps" in has \
            else []
        events = {r[0]: r[1] for r in db.execute("SELECT id, taken_by FROM events")} \
            if "events" in has else {}
        parents = {r[0]: r[1] for r in db.execute("SELECT id, parent FROM jobs")}
    finally:
        db.close()
    assert all(job_id in rows for job_id, _, _ in steps), "a step recorded without its workflow"
    assert all(by is None or by in rows for by in events.values()), "an event taken by no job"
    assert all(p is None or p in rows for p in parents.values()), "a child without its parent"
    for i, state, _ in run.acks("C", durability):
        j = rows.get(int(i))
        assert j is not None and j["state"] == state, (f"acknowledged {state} lost", j)
    lost = [i for i, _ in run.acks("E", durability) if int(i) not in rows]
    assert not lost, lost
    gone = [i for i, _ in run.acks("V", durability) if int(i) not in events]
    assert not gone, f"acknowledged events lost: {gone}"
    db = plain(path)  # an event whose send was lost is sent again, as its sender would retry
    try:
        if "events" in has:
            have = {r[0] for r in db.execute("SELECT name FROM events")}
            db.execute("BEGIN IMMEDIATE")
            for n in range(6):
                if f"go:{n}" not in have:
                    db.execute("INSERT INTO events (name, payload, sent_at) VALUES (?, '100', ?)",
                               (f"go:{n}", time.time()))
            db.execute("COMMIT")
    finally:
        db.close()
    after = fresh_service(path, durability)
    for j in after.values():
        if j["task"] == pl_flow.name and j["state"] == "succeeded":
            i = j["args"][0]
            assert json.loads(j["result"]) == (2 * (i + 1) + 2 * (i + 2)) + 1 + 100, j


def _none(path: str, durability: str) -> None:
    SqliteStore(path).close()


WORKLOADS: dict[str, tuple[Callable[[str, str], None], Callable[[Work], None],
                           Callable[[str, str, Run], None]]] = {
    "enqueue": (_none, w_enqueue, c_enqueue),
    "enqueue_many": (_none, w_enqueue_many, c_enqueue),
    "worker": (p_jobs(30), w_worker, c_work),
    "service": (_none, w_service, c_work),
    "cron": (_none, w_cron, c_cron),
    "once": (p_ledger, w_once, c_once),
    "once_in_jobs": (p_ledger, w_once_jobs, c_once_jobs),
    "migrate": (p_old_store, w_migrate, c_migrate),
    "prune": (p_finished, w_prune, c_prune),
    "workflows": (_none, w_workflows, c_workflows),
}


@pytest.mark.parametrize("durability", DURABILITIES)
@pytest.mark.parametrize("name", list(WORKLOADS))
def test_power_loss(tmp_path: Path, name: str, durability: str, long: bool, seed: int) -> None:
    prepare, work, check = WORKLOADS[name]
    rng = random.Random(seed)
    points = 40 if long else 3
    TALLY.clear()
    total = None
    for k in range(points + 1):
        folder = tmp_path / f"run{k}"
        folder.mkdir()
        path = str(folder / "jobs.db")
        prepare(path, durability)
        at = None if total is None else rng.randint(1, total)
        run = crash(folder, work, path, durability, rng.randrange(1 << 30), at)
        if total is None:
            assert run.ended, "the workload did not finish"
            total = run.events
        try:
            check(path, durability, run)
        except AssertionError as exc:
            raise AssertionError(f"{name}/{durability}: power lost at event {at} of {total} "
                                 f"(unsynced writes: {run.fates}): {exc}") from exc
        TALLY["power losses"] += 1
        TALLY["acknowledgements checked"] += run.checked
        TALLY["idle at the loss"] += run.ended
        for fate in run.fates.split():
            kind, n = fate.split("=")
            TALLY[f"unsynced writes {kind}"] += int(n)
    print(f"{name}/{durability}: {total} events; held: " +
          ", ".join(f"{k} {v}" for k, v in sorted(TALLY.items())))
