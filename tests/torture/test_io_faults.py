"""I/O faults: an apsw VFS, inheriting from the default one, fails a seeded fraction of the
writes and syncs SQLite makes (SQLITE_IOERR), for the WAL, the store file and checkpoints.

Checked, after reopening the file with the normal VFS and none of jobrun's code:
- no acknowledged enqueue is lost (every enqueue that returned an id is there, intact);
- no half-written job (every row has a valid state and JSON columns that parse);
- `PRAGMA integrity_check` is ok;
- a checkpoint failing midway (the store file half updated) harms nothing;
- once the faults stop, the store API (enqueue, tick, record) and a running service work
  again without a restart, and every acknowledged job finishes.

GAP: SqliteStore offers no way to choose a VFS, so these tests replace `SqliteStore._open`
with a copy that passes `vfs=` (torture_util.open_with_vfs). Smallest change in jobrun: a
`vfs: str | None = None` keyword on SqliteStore.__init__ passed on to apsw.Connection.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Iterator

import apsw
import pytest
from torture_util import (
    Capture,
    Faults,
    FaultyVFS,
    audit_rows,
    checkpoint_under_faults,
    integrity,
    open_with_vfs,
    plain,
)

import jobrun
from crashapp.harness import wait_for
from jobrun import clock
from jobrun.config import parse
from jobrun.errors import StoreError
from jobrun.model import Outcome
from jobrun.store.sqlite import SqliteStore

pytestmark = pytest.mark.torture

TASK = "torture.io:job"


@pytest.fixture
def faulty(seed: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[Faults]:
    """Every SqliteStore connection of this process goes through the faulty VFS."""
    faults = Faults(seed, rate=0.0)
    name = f"faulty-{seed}"
    vfs = FaultyVFS(name, faults)
    faults.vfs = name  # type: ignore[attr-defined]
    monkeypatch.setattr(SqliteStore, "_open", open_with_vfs(name))
    yield faults
    faults.on = False
    vfs.unregister()


def _result_of(job_id: int, payload: str) -> dict[str, int]:
    return {"id": job_id, "len": len(payload)}


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_store_api_under_write_and_sync_faults(store_path: str, faulty: Faults, long: bool,
                                               seed: int, durability: str) -> None:
    ops = 4000 if long else 300
    rng = random.Random(seed + 1)
    SqliteStore(store_path).close()  # a current store (the migration is not under test here)
    settings = parse(f'[jobrun]\ndurability = "{durability}"\n')[0]
    app = jobrun.App(store_path, settings=settings)
    checkpointer = apsw.Connection(store_path, vfs=faulty.vfs)  # type: ignore[attr-defined]
    checkpoints = {"ok": 0, "failed": 0}
    acked: dict[int, str] = {}           # job id -> its payload
    refused: list[str] = []              # payloads of enqueues that raised
    claimed: dict[int, int] = {}         # job id -> token, from acknowledged ticks
    pending: list[Outcome] = []          # outcomes not yet acknowledged
    recorded: set[int] = set()           # ids whose success a returned tick/record holds
    errors = {"enqueue": 0, "tick": 0, "record": 0}
    live_ghosts: list[int] = []          # refused enqueues that committed anyway

    def payload(n: int) -> str:
        return f"op{n}:" + "".join(rng.choice("abcdefgh\u00e9\u4e2d") for _ in
                                      range(rng.choice((0, 10, 300, 3000, 9000))))

    def run_claims(claims: list) -> None:
        for c in claims:
            if c.id not in acked:  # an enqueue that raised, yet committed: seen live
                assert c.args[0] in refused, f"claimed job {c.id} no enqueue made"
                live_ghosts.append(c.id)
                acked[c.id] = c.args[0]
            assert c.args == [acked[c.id]], f"job {c.id} came back changed"
            claimed[c.id] = c.token
            pending.append(Outcome(c.id, c.token, "succeeded",
                                   json.dumps(_result_of(c.id, acked[c.id]))))

    def tick(want: int) -> None:
        nonlocal pending
        out = list(pending)
        t = app.store.acquire_round(out, {"default": want}, "torture-holder", now=clock.now(),
                           lease=3600)
        pending = []
        recorded.update(o.id for o in out)
        run_claims(t.claims)

    def step(n: int, strict: bool) -> None:
        nonlocal pending
        op = rng.random()
        try:
            if op < 0.45:
                p = payload(n)
                try:
                    acked[app.enqueue(TASK, args=[p]).id] = p
                except StoreError:
                    refused.append(p)
                    raise
            elif op < 0.6:
                ps = [payload(n) + f"#{k}" for k in range(rng.randrange(2, 20))]
                try:
                    jobs = app.enqueue_many([jobrun.Call(TASK, (p,)) for p in ps])
                except StoreError:
                    refused.extend(ps)
                    raise
                acked.update({j.id: p for j, p in zip(jobs, ps)})
            elif op < 0.85:
                tick(rng.randrange(1, 10))
            elif op < 0.92:
                ok = checkpoint_under_faults(checkpointer, faulty,
                                             rng.choice(("PASSIVE", "FULL", "TRUNCATE")))
                checkpoints["ok" if ok else "failed"] += 1
            else:
                if pending:
                    out = list(pending)
                    app.store.record(out, now=clock.now())
                    pending = []
                    recorded.update(o.id for o in out)
        except StoreError:
            kind = "enqueue" if op < 0.6 else "tick" if op < 0.85 else "record"
            errors[kind] += 1
            if strict:
                raise

    try:
        faulty.rate = 0.05
        faulty.on = True
        for n in range(ops):
            step(n, strict=False)
        faulty.on = False
        # Faults stopped: everything works again at once, on the same connections.
        for n in range(ops, ops + 50):
            step(n, strict=True)
        assert checkpoint_under_faults(checkpointer, faulty, "TRUNCATE")
        for _ in range(10_000):
            before = len(recorded)
            tick(50)
            if not pending and len(recorded) == before and \
                    app.store.read("SELECT count(*) FROM jobs WHERE state = 'queued'")[0][0] == 0:
                break
        assert not pending
    finally:
        faulty.on = False
        app.close()
        checkpointer.close()

    assert faulty.total > 0, "no fault was injected: the test tested nothing"
    db = plain(store_path)
    try:
        assert integrity(db) == "ok"
        rows = audit_rows(db)
        lost = [i for i in acked if i not in rows]
        assert not lost, f"{len(lost)} acknowledged jobs lost, e.g. {lost[:5]}"
        changed = [i for i, p in acked.items() if rows[i]["args"] != [p]]
        assert not changed, f"acknowledged jobs changed: {changed[:5]}"
        unfinished = [i for i in acked if rows[i]["state"] != "succeeded"]
        assert not unfinished, f"acknowledged jobs not finished: {[(i, rows[i]['state'], i in claimed, i in recorded) for i in unfinished[:8]]} of {len(unfinished)}"
        wrong = [i for i in acked if rows[i]["result"] != _result_of(i, acked[i])]
        assert not wrong, f"wrong results: {wrong[:5]}"
        refused_set = set(refused)
        ghosts = [i for i in rows if i not in acked]
        assert all(rows[i]["args"][0] in refused_set for i in ghosts), \
            "rows that no enqueue call made"
    finally:
        db.close()
    print(f"durability={durability}: {ops} ops, calls {faulty.calls}, faults {faulty.fired}, "
          f"checkpoints {checkpoints}; StoreErrors {errors}; "
          f"{len(acked) - len(live_ghosts)} jobs acknowledged and finished; refused enqueues "
          f"that committed anyway: {len(live_ghosts)} seen live, {len(ghosts)} after reopening")


# -- a running service under faults -------------------------------------------------------------
_reg = jobrun.App()  # registers the task below (a test builds its own App on its store)


@_reg.task
def io_job(i: int) -> int:
    return i * 3


def test_embedded_service_recovers_after_io_faults(store_path: str, faulty: Faults, long: bool,
                                                   seed: int) -> None:
    seconds = 20.0 if long else 2.0
    rng = random.Random(seed + 2)
    settings = parse('[jobrun]\npoll = "100ms"\nlease = "10s"\n'
                     "[queues.default]\nconcurrency = 4\n")[0]
    producer = jobrun.App(store_path, settings=settings)
    checkpoints = {"ok": 0, "failed": 0}
    stop_checkpoints = threading.Event()

    def checkpointing() -> None:
        c = apsw.Connection(store_path, vfs=faulty.vfs)  # type: ignore[attr-defined]
        try:
            while not stop_checkpoints.wait(0.02):
                ok = checkpoint_under_faults(c, faulty)
                checkpoints["ok" if ok else "failed"] += 1
        finally:
            c.close()
    cap_log = Capture()
    logging.getLogger("jobrun").addHandler(cap_log)
    acked: dict[int, int] = {}
    refused = 0
    try:
        producer.start()
        service = producer._service
        assert service is not None
        faulty.rate = 0.03
        faulty.on = True
        cp = threading.Thread(target=checkpointing, name="torture-checkpoints")
        cp.start()
        i = 0
        deadline = time.monotonic() + seconds
        # Until the deadline, and on (10 s at most) until a fault was injected: under load a
        # short run may make too few writes to draw one.
        while time.monotonic() < deadline or (faulty.total == 0 and
                                               time.monotonic() < deadline + 10):
            i += 1
            try:
                if rng.random() < 0.8:
                    acked[producer.enqueue(io_job.name, args=[i]).id] = i
                else:
                    calls = [io_job.call(i * 1000 + k) for k in range(rng.randrange(2, 10))]
                    jobs = producer.enqueue_many(calls)
                    acked.update({j.id: c.args[0] for j, c in zip(jobs, calls)})
            except StoreError:
                refused += 1
            time.sleep(rng.choice((0, 0, 0.001, 0.005)))
        faulty.on = False
        stop_checkpoints.set()
        cp.join()
        assert faulty.total > 0, "no fault was injected"
        probe = plain(store_path)
        try:
            wait_for(lambda: probe.execute(
                "SELECT count(*) FROM jobs WHERE state = 'succeeded'").get >= len(acked),
                     120 if long else 30, "every acknowledged job to succeed")
        finally:
            probe.close()
        assert all(t.is_alive() for t in service._threads), "a service thread died"
        assert producer.enqueue(io_job.name, args=[-1]).result(timeout=10) == -3
        producer.stop(10)
    finally:
        faulty.on = False
        stop_checkpoints.set()
        logging.getLogger("jobrun").removeHandler(cap_log)
        producer.close()
    db = plain(store_path)
    try:
        assert integrity(db) == "ok"
        rows = audit_rows(db)
        lost = [j for j in acked if j not in rows]
        assert not lost, f"acknowledged jobs lost: {lost[:5]}"
        bad = [j for j, arg in acked.items()
               if rows[j]["state"] != "succeeded" or rows[j]["result"] != arg * 3]
        assert not bad, f"acknowledged jobs not finished right: {bad[:5]}"
        ghosts = len(rows) - len(acked) - 1
    finally:
        db.close()
    logged = [ln for ln in cap_log.text(logging.ERROR).splitlines() if ln]
    print(f"{seconds}s of faults: {faulty.fired} of {faulty.calls}, checkpoints {checkpoints}; "
          f"{len(acked)} jobs acknowledged, {refused} "
          f"enqueues refused, {ghosts} refused but committed; {len(logged)} error log lines, "
          f"first: {logged[0][:160] if logged else None}")
    assert not [t for t in threading.enumerate() if t.name.startswith("jobrun-loop")]
