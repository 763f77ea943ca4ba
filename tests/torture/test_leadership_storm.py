"""Leadership storm: three `jobrun start` services share a per-second cron entry; the
leader is, in turn, SIGKILLed, SIGSTOPped (then SIGCONTed), and SIGSTOPped then SIGKILLed
while stopped; killed services are restarted.

A SIGSTOPped leader keeps its flock (the kernel drops it only when the process dies), so
fires stall until SIGCONT; then every due time missed meanwhile must fire, late, exactly
once. A leader killed while stopped leaves its missed due times to the next leader. Over the
whole storm every due second fires exactly once (no gap, no duplicate: `cron_fires` and
`jobs` agree), and each recovery (takeover or catch-up) is made within 2 s.

Reuses tests/test_leadership.py's helpers (config, leader detection by /proc/locks, the
every-second-once audit). Short (default): about 12 s. `--long`: 60 s.
"""

from __future__ import annotations

import importlib.util
import math
import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest

from crashapp.harness import (
    Reader,
    proc_state,
    sigstop_outside_write,
    wait_for,
    wait_serving,
)


def _import_test_leadership() -> None:
    """`tests/test_leadership.py` says `from conftest import run_cli`: `conftest` must be
    tests/conftest.py while it is imported (under `pytest tests/torture`, the module named
    `conftest` is this folder's)."""
    if "test_leadership" in sys.modules:
        return
    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("_jobrun_tests_conftest",
                                                  root / "conftest.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    saved = sys.modules.get("conftest")
    sys.modules["conftest"] = mod
    try:
        importlib.import_module("test_leadership")
    finally:
        if saved is not None:
            sys.modules["conftest"] = saved
        else:
            sys.modules.pop("conftest", None)


_import_test_leadership()
from test_leadership import (  # noqa: E402
    TAKEOVER,
    Spawner,
    assert_every_second_once,
    every_entry,
    fires,
    leader_of,
    serving_with_a_leader,
    stop_all,
    wait_leader,
    write_config,
)

MODES = ("kill", "stop", "stop-kill")


def owed(db: Reader, since: float, until: float) -> list[int]:
    """Due seconds in [since, until] (whole seconds of the wall clock)."""
    return list(range(math.ceil(since), math.floor(until) + 1))


@pytest.mark.torture
def test_leader_killed_and_stopped_in_turn_each_due_time_fires_once(
        tmp_path: Path, long: bool, seed: int) -> None:
    run_for = 60.0 if long else 12.0
    rng = random.Random(seed)
    cfg = write_config(tmp_path, cron=every_entry("tick", "1s"))
    store = str(tmp_path / "jobs.db")
    spawn = Spawner(cfg, tmp_path)
    procs = [spawn() for _ in range(3)]
    everyone = spawn.everyone
    db: Reader | None = None
    done: dict[str, list[float]] = {m: [] for m in MODES}  # mode -> recovery delays
    stalls: list[float] = []
    try:
        db = serving_with_a_leader(store, procs)
        end = time.monotonic() + run_for
        turn = rng.randrange(len(MODES))
        while time.monotonic() < end or any(not v for v in done.values()):
            mode = MODES[turn % len(MODES)]
            turn += 1
            leader = wait_leader(store, procs)
            time.sleep(rng.uniform(0.2, 1.2))  # pacing of the fault, anywhere in a second
            assert leader.alive(), leader.log_text()[-3000:]
            if mode in ("stop", "stop-kill"):
                sigstop_outside_write(store, leader)
                stop_wall = time.time()
                hold = rng.uniform(1.0, 2.5)
                time.sleep(hold)
                assert proc_state(leader.pid) == "T"
                # It keeps the flock while stopped: nobody else leads, nobody fires.
                assert leader_of(store, procs) is leader
                made = [r for r in fires(db) if r[3] > stop_wall + 0.2]
                assert not made, f"fires made while the leader was stopped: {made}"
                stalls.append(time.time() - stop_wall)
            t_wall = time.time()
            if mode == "stop":
                os.kill(leader.pid, signal.SIGCONT)
                want = owed(db, stop_wall + 0.2, t_wall)
            else:
                os.kill(leader.pid, signal.SIGKILL)  # works on a stopped process too
                leader.proc.wait(5)
                procs.remove(leader)
                want = owed(db, stop_wall + 0.2, t_wall) if mode == "stop-kill" else []
                new = wait_leader(store, procs, timeout=5)
                assert new is not leader
            # Every due time missed meanwhile is made, once, within 2 s (by the same leader
            # after SIGCONT, by the next one after a kill), and the next one after that.
            def caught_up(want: list[int] = want, t_wall: float = t_wall) -> bool:
                have = {int(r[0]) for r in fires(db)}
                return set(want) <= have and max(have) >= math.floor(t_wall) + 1
            wait_for(caught_up, TAKEOVER + 1, f"the owed fires after {mode}: {want}")
            made_at = [r[3] for r in fires(db) if int(r[0]) in want or
                       int(r[0]) == math.floor(t_wall) + 1]
            done[mode].append(max(made_at) - t_wall)
            if mode != "stop":
                p = spawn()
                procs.append(p)
                wait_serving(store, p)
        stop_all(procs)
        rows = assert_every_second_once(db)
        late = [r[3] - r[0] for r in rows]
        print(f"{len(rows)} fires over {rows[-1][0] - rows[0][0]:.0f}s; "
              + "; ".join(f"{m}: {len(v)}x, recovered in max {max(v):.2f}s"
                          for m, v in done.items())
              + f"; stalls while stopped up to {max(stalls):.1f}s; latest fire "
              f"{max(late):.2f}s after its due time")
        for m, v in done.items():
            assert max(v) < TAKEOVER, (m, v)
    finally:
        if db is not None:
            db.close()
        for p in everyone:
            p.kill()
