"""Hostile input: configs, cron strings, payloads, store files and job rows made to break things.

- jobrun.toml: random text, structured documents with hostile values, every truncation of
  real configs. `config.parse` returns problems that name the file and the reason, never
  raises; a reload of such a file is refused and the running config stays in force.
- cron strings: accepted or refused (ScheduleError), never a hang; a next fire takes well
  under 10 ms.
- payloads: deep, huge, not JSON: refused with TypeError and no row, or stored exactly.
- store files that are garbage or from a newer jobrun: StoreError, the file untouched byte for
  byte, no -wal/-shm left.
- rows naming `os:system` & co.: never imported or run, they go dead with UnknownTask.
- rows whose JSON is malformed (written by a foreign producer): they must not stop the queue.
- a store folder writable by others: used, with one warning naming it (as documented).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import random
import re
import stat
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import apsw
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torture_util import (
    Capture,
    audit_rows,
    integrity,
    plain,
    sha_of,
    side_files,
    write_config,
    write_tasks_module,
)

import jobrun
from crashapp.harness import ServiceProc, wait_for, wait_serving
from jobrun.config import Settings, check, parse
from jobrun.cron import ScheduleError, next_fires, parse_schedule
from jobrun.errors import ConfigError, StoreError
from jobrun.ops.reload import Reloader, load_valid
from jobrun.store.sqlite import SqliteStore

pytestmark = pytest.mark.torture
ROOT = Path(__file__).resolve().parents[2]


def _hyp(long: bool, short_n: int, long_n: int) -> Any:
    """Hypothesis settings: derandomized (replayable) in normal runs, exploring with --long."""
    return settings(max_examples=long_n if long else short_n, deadline=None,
                    derandomize=not long, database=None,
                    suppress_health_check=list(HealthCheck))


# == 1. jobrun.toml ===========================================================================
def _toml_str(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_str(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise AssertionError(type(v))


_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
_SCALAR = st.one_of(
    st.booleans(), st.integers(-(2 ** 63), 2 ** 63 - 1), st.sampled_from([0, -1, 1, 2 ** 31]),
    st.floats(allow_nan=True, allow_infinity=True), _TEXT,
    st.sampled_from(["", "0", "-1", "1e400", "30s", "5m1h", "1/0s", "10/s", "nan", "default",
                     "../../etc/passwd", "localtime", "UTC", "Mars/Olympus", "\x00", "²",
                     "0 0 30 2 *", "* * * * * *", "@reboot", "thread", "process", "async"]),
    st.datetimes(timezones=st.just(UTC)),
)
_VALUE: Any = st.deferred(lambda: st.one_of(
    _SCALAR, _SCALAR, _SCALAR, st.lists(_VALUE, max_size=3),
    st.dictionaries(_TEXT, _VALUE, max_size=3)))
_JOBRUN_KEYS = ["store", "shutdown_timeout", "durability", "import", "app", "lease", "poll",
                "misfire_grace", "retention", "dead_retention", "log_args", "log_format",
                "log_level"]
_QUEUE_KEYS = ["concurrency", "executor", "max_attempts", "retry_base", "retry_cap", "timeout",
               "rate_limit", "max_tasks_per_child"]
_TASK_KEYS = ["command", "queue", "timeout", "max_attempts", "env", "cwd", "shell"]
_CRON_KEYS = ["name", "schedule", "every", "timezone", "task", "command", "args", "kwargs",
              "queue", "priority", "misfire"]


def _table(keys: list[str]) -> Any:
    return st.dictionaries(st.one_of(st.sampled_from(keys), _TEXT), _VALUE, max_size=6)


_DOC = st.fixed_dictionaries({}, optional={
    "jobrun": _table(_JOBRUN_KEYS),
    "queues": st.dictionaries(st.one_of(st.sampled_from(["default", "1", "0"]), _TEXT),
                              _table(_QUEUE_KEYS), max_size=3),
    "tasks": st.dictionaries(_TEXT, _table(_TASK_KEYS), max_size=3),
    "cron": st.lists(_table(_CRON_KEYS), max_size=3),
    "metrics": _table(["listen"]),
    "alerts": _table(["oldest_queued_age", "dead_per_hour", "on_alert"]),
    "extra": _VALUE,
})


def _render(doc: dict[str, Any]) -> str:
    lines: list[str] = []
    for key in ("jobrun", "metrics", "alerts"):
        if key in doc:
            lines.append(f"[{key}]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc[key].items()]
    for key in ("queues", "tasks"):
        for name, table in doc.get(key, {}).items():
            lines.append(f"[{key}.{_toml_key(name)}]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    for table in doc.get("cron", []):
        lines.append("[[cron]]")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    if "extra" in doc:
        lines.insert(0, f"extra = {_toml_value(doc['extra'])}")
    return "\n".join(lines) + "\n"


def _parse_ok(text: str, file: str = "fuzz.toml") -> tuple[Settings, list[ConfigError]]:
    """config.parse must return; each problem is a ConfigError naming the file and a reason."""
    s, problems = parse(text, file)
    assert isinstance(s, Settings)
    for p in problems:
        assert isinstance(p, ConfigError), p
        assert p.reason and file in str(p), str(p)
    return s, problems


def test_config_parse_never_raises_on_random_text(long: bool) -> None:
    @_hyp(long, 300, 5000)
    @given(st.text())
    def run(text: str) -> None:
        _parse_ok(text)
    run()


def test_config_parse_never_raises_on_hostile_documents(long: bool) -> None:
    stats = {"valid_toml": 0, "accepted": 0}

    @_hyp(long, 200, 3000)
    @given(_DOC)
    def run(doc: dict[str, Any]) -> None:
        text = _render(doc)
        _, problems = _parse_ok(text)
        if not (problems and problems[0].reason.startswith("not valid TOML")):
            stats["valid_toml"] += 1
        if not problems:
            stats["accepted"] += 1
    run()
    print(f"hostile documents: {stats}")
    assert stats["valid_toml"] > 0, "the generator made no valid TOML: it tested nothing"


def test_config_parse_queue_named_with_a_non_decimal_digit() -> None:
    """A queue (or task) named "²": `str.isdigit()` is true but `int()` fails. Found by the
    structured fuzzing above (_Reader.line_of takes any isdigit() path part for an array
    index). The problem must be reported, not raised."""
    for name in ("²", "①", "١"):
        _, problems = _parse_ok(f'[queues."{name}"]\nconcurrency = "many"\n')
        assert any("concurrency" in str(p) for p in problems), problems
        _, problems = _parse_ok(f'[tasks."{name}"]\ncommand = 5\n')
        assert any("command" in str(p) for p in problems), problems


RICH = """# nächtliche Jobs — a config with every kind of table
[jobrun]
store = "jobs.db"
shutdown_timeout = "30s"
durability = "full"
import = []
lease = "1m"
poll = "250ms"
log_format = "json"

[queues.default]
concurrency = 4
executor = "thread"
max_attempts = 3
retry_base = "1s"
rate_limit = "10/s"

[queues.reports]
concurrency = 1
executor = "process"
max_tasks_per_child = 100

[tasks.backup]
command = ["/usr/bin/env", "true", "--naïve"]
timeout = "1h"
env = { MODE = "full" }

[[cron]]
name = "nächtlich"
schedule = "30 2 * * MON-FRI"
timezone = "Europe/Berlin"
command = ["true"]
misfire = "once"

[[cron]]
name = "heartbeat"
every = "30s"
task = "backup"

[metrics]
listen = "127.0.0.1:9464"

[alerts]
oldest_queued_age = "10m"
dead_per_hour = 5
"""


def _configs() -> list[tuple[str, str]]:
    example = (ROOT / "jobrun" / "jobrun.toml.example").read_text(encoding="utf-8")
    return [("example", example), ("rich", RICH)]


def test_every_truncation_of_real_configs_is_handled(tmp_path: Path, long: bool) -> None:
    """Every cut (by character for parse, by byte for a file: split UTF-8 too)."""
    for label, text in _configs():
        _, problems = _parse_ok(text, "whole.toml")
        assert not problems, (label, [str(p) for p in problems])
        data = text.encode("utf-8")
        step = 1 if long else max(1, len(data) // 150)
        cuts = sorted(set(range(0, len(data), step)) | {len(data) - 1, 1, 2})
        f = tmp_path / f"{label}.toml"
        for k in cuts:
            _parse_ok(text[:k], "cut.toml")
            f.write_bytes(data[:k])
            _, problems = check(str(f))
            for p in problems:
                assert isinstance(p, ConfigError) and str(f) in str(p), p
        print(f"{label}: {len(cuts)} truncations")


class _StubService:
    """What Reloader needs of a Service: settings, apply, status_line."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.applied: list[Settings] = []

    def apply(self, settings: Settings) -> None:
        self.applied.append(settings)
        self.settings = settings

    def status_line(self) -> str:
        return "stub"


def test_a_failed_reload_keeps_the_old_config(tmp_path: Path, long: bool) -> None:
    cfg = tmp_path / "jobrun.toml"
    cfg.write_text(RICH, encoding="utf-8")
    store = tmp_path / "jobs.db"
    good = load_valid(str(cfg), Settings())
    assert good.store == str(store)
    svc = _StubService(good)
    reloader = Reloader(svc, str(cfg))  # type: ignore[arg-type]
    data = RICH.encode("utf-8")
    fixed = [b"", b"\xff\xfe\x00garbage", data[:len(data) // 2], data + b"\n[jobrun\n",
             data.replace(b'concurrency = 4', b'concurrency = "four"'),
             data.replace(b'import = []', b'import = ["tt_no_such_module_anywhere"]'),
             data.replace(b'store = "jobs.db"', b'store = "elsewhere.db"'),
             data.replace(b"30 2 * * MON-FRI", b"61 2 * * *"),
             data.replace(b'"Europe/Berlin"', b'"Europe/Atlantis"'),
             b"\x00" * 100, data[:7], data.replace(b"\n", b"\r")]

    def attempt(content: bytes) -> None:
        cfg.write_bytes(content)
        before = svc.settings
        n_applied = len(svc.applied)
        try:
            load_valid(str(cfg), before)
            valid = True
        except ConfigError as exc:
            valid = False
            assert str(exc), "an empty error"
        ok = reloader.reload("test")
        assert ok == valid
        if not ok:
            assert svc.settings is before, "a refused reload changed the running config"
            assert len(svc.applied) == n_applied

    for content in fixed:
        attempt(content)
        assert svc.settings == good or svc.settings in svc.applied

    @_hyp(long, 150, 3000)
    @given(st.one_of(st.binary(max_size=3000),
                     st.integers(0, len(data)).map(lambda k: data[:k]),
                     st.tuples(st.integers(0, len(data) - 1), st.binary(min_size=1, max_size=4))
                     .map(lambda t: data[:t[0]] + t[1] + data[t[0] + len(t[1]):])))
    def run(content: bytes) -> None:
        attempt(content)
    run()
    print(f"reloads refused {reloader.refused}, applied {reloader.applied}")
    assert reloader.refused > 0


# == 2. cron strings ==========================================================================
_NAMES = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN", "JAN", "FEB", "DEC", "mon", "L", "W",
          "LW", "?", "*"]


def _atom() -> Any:
    num = st.one_of(st.integers(0, 61), st.sampled_from([0, 1, 7, 12, 23, 24, 29, 30, 31, 59, 60,
                                                         99, 10 ** 12]))
    return st.one_of(
        num.map(str), st.sampled_from(_NAMES),
        st.tuples(num, num).map(lambda t: f"{t[0]}-{t[1]}"),
        st.tuples(st.sampled_from(["*", "0-59", "1-31", "5"]), num).map(lambda t: f"{t[0]}/{t[1]}"),
        num.map(lambda n: f"{n}L"), st.tuples(st.sampled_from(["MON", "5", "SUN", "7"]), num)
        .map(lambda t: f"{t[0]}#{t[1]}"), num.map(lambda n: f"{n}W"),
        st.text(alphabet="0123456789*/-,#LW?abcMONJ ", max_size=6))


_JUNK_FIELD = st.lists(_atom(), min_size=1, max_size=4).map(",".join)
_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_EXTRA = [[], [], ["L", "LW", "15W", "1W", "L-3"], ["JAN", "FEB", "JUN-AUG", "DEC"],
          ["MON", "SUN", "MON-FRI", "5L", "MON#1", "FRI#5", "SUN#4", "6#3"]]


def _field(i: int) -> Any:
    lo, hi = _RANGES[i]
    n = st.integers(lo, hi)
    atom = st.one_of(
        st.just("*"), n.map(str), st.tuples(n, n).map(lambda t: f"{min(t)}-{max(t)}"),
        st.integers(1, hi + 1).map(lambda k: f"*/{k}"),
        st.tuples(n, n, st.integers(1, 10)).map(lambda t: f"{min(t[:2])}-{max(t[:2])}/{t[2]}"),
        *([st.sampled_from(_EXTRA[i])] if _EXTRA[i] else []))
    return st.one_of(atom, st.lists(atom, min_size=2, max_size=4).map(",".join))


_VALIDISH = st.tuples(*[_field(i) for i in range(5)]).map(" ".join)
_CRON = st.one_of(
    _VALIDISH, _VALIDISH, _VALIDISH, _VALIDISH, _VALIDISH, _VALIDISH,
    st.lists(_JUNK_FIELD, min_size=3, max_size=7).map(" ".join),
    st.tuples(_VALIDISH, st.integers(0, 4), _JUNK_FIELD).map(
        lambda t: " ".join(t[0].split()[:t[1]] + [t[2]] + t[0].split()[t[1] + 1:])),
    st.sampled_from(["@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly",
                     "@annually", "@reboot", "@HOURLY", "@", "", "0 0 30 2 *",
                     "0 0 31 4,6,9,11 *", "0 0 29 2 *", "0 0 * 2 MON#5", "0 0 29 2 SUN#5"]),
    st.text(max_size=40))
_GOOD_ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe",
               "Pacific/Chatham", "Asia/Kathmandu", "America/Santiago", "Antarctica/Troll",
               "Pacific/Apia", "Europe/Dublin", "America/St_Johns", "Africa/Casablanca"]
_ZONES = st.one_of(st.sampled_from(_GOOD_ZONES), st.sampled_from(_GOOD_ZONES),
                   st.sampled_from(_GOOD_ZONES),
                   st.sampled_from(["localtime", "", "Nowhere/Nothing", "../etc/passwd",
                                    "UTC\x00", "x" * 300, "utc", "Etc/GMT+14"]))


def test_random_cron_strings_are_accepted_or_refused_quickly(long: bool) -> None:
    worst_parse = 0.0
    next_times: list[float] = []
    counts = {"accepted": 0, "refused": 0}

    @_hyp(long, 400, 8000)
    @given(_CRON, _ZONES, st.datetimes(min_value=datetime(1970, 1, 2),
                                       max_value=datetime(2200, 1, 1),
                                       timezones=st.just(UTC)))
    def run(expr: str, tz: str, after: datetime) -> None:
        nonlocal worst_parse
        t0 = time.perf_counter()
        try:
            sched = parse_schedule(expr, tz)
        except ScheduleError as exc:
            assert str(exc)
            counts["refused"] += 1
            return
        finally:
            worst_parse = max(worst_parse, time.perf_counter() - t0)
        counts["accepted"] += 1
        best = math.inf
        for _ in range(3):  # the least of 3: scheduling noise is not the code's time
            t0 = time.perf_counter()
            try:
                nxt = sched.next_after(after)
            except ScheduleError:  # does not fire within 50 years (before year 10000)
                nxt = None
            best = min(best, time.perf_counter() - t0)
        next_times.append(best)
        if nxt is not None:
            assert nxt > after and nxt.utcoffset() == timedelta(0)
            fires = next_fires(sched, after, 3)
            assert fires[0] == nxt and all(a < b for a, b in itertools.pairwise(fires))
    run()
    next_times.sort()
    worst = next_times[-1] if next_times else 0.0
    p99 = next_times[int(len(next_times) * 0.99)] if next_times else 0.0
    print(f"cron: {counts}; parse worst {worst_parse * 1000:.1f} ms; next fire worst "
          f"{worst * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms")
    assert counts["accepted"] > 20 and counts["refused"] > 20
    assert worst_parse < 1.0, "parsing a cron expression took a second: a hang?"
    assert worst < (0.010 if long else 0.050), f"a next fire took {worst * 1000:.1f} ms"


# == 3. payloads ==============================================================================
def _rows(app: jobrun.App) -> tuple[int, int]:
    return tuple(app.store.read("SELECT count(*), coalesce(max(id), 0) FROM jobs")[0])  # type: ignore[return-value]


class _Thing:
    pass


def _cycle_list() -> list[Any]:
    x: list[Any] = [1]
    x.append(x)
    return x


def _cycle_dict() -> dict[str, Any]:
    d: dict[str, Any] = {}
    d["self"] = {"up": d}
    return d


def _deep(n: int) -> list[Any]:
    x: list[Any] = []
    for _ in range(n):
        x = [x]
    return x


NOT_JSON = {
    "object": object(), "set": {1, 2}, "bytes": b"x", "nan": math.nan, "inf": math.inf,
    "-inf": -math.inf, "cycle-list": _cycle_list(), "cycle-dict": _cycle_dict(),
    "datetime": datetime.now(UTC), "complex": 1j, "class": _Thing, "instance": _Thing(),
    "function": len, "tuple-key": {(1, 2): 3}, "deep": _deep(100_000),
    "nested-nan": {"a": [1, {"b": math.nan}]}, "frozenset": frozenset(),
}


@pytest.mark.parametrize("name", sorted(NOT_JSON))
def test_not_json_payloads_are_refused_with_type_error_and_no_row(app: jobrun.App,
                                                                  name: str) -> None:
    value = NOT_JSON[name]
    app.enqueue("torture.hostile:t", args=[0])
    before = _rows(app)
    with pytest.raises(TypeError) as e1:
        app.enqueue("torture.hostile:t", args=[value])
    with pytest.raises(TypeError) as e2:
        app.enqueue("torture.hostile:t", kwargs={"v": value})
    with pytest.raises(TypeError):
        app.enqueue_many([jobrun.Call("torture.hostile:t", (1,)),
                          jobrun.Call("torture.hostile:t", (value,))])
    assert _rows(app) == before
    assert "argument" in str(e1.value) and "argument" in str(e2.value), str(e1.value)
    if name == "deep":
        assert "deep" in str(e1.value)
    if "cycle" in name:
        assert "cycle" in str(e1.value)


@pytest.mark.parametrize("where", ["args", "kwargs"])
def test_a_lone_surrogate_is_refused_with_type_error_or_stored_exactly(app: jobrun.App,
                                                                      where: str) -> None:
    """"\ud800" is a Python str that json.dumps accepts but UTF-8 cannot encode, so it cannot
    be stored as TEXT as is. Either refuse it (TypeError, no row) or store it escaped so it
    comes back equal; today a UnicodeEncodeError escapes from the SQLite binding."""
    app.enqueue("torture.hostile:t", args=[0])
    before = _rows(app)
    value = "ok \ud800 not ok"
    try:
        if where == "args":
            job = app.enqueue("torture.hostile:t", args=[value])
        else:
            job = app.enqueue("torture.hostile:t", kwargs={"v": value})
    except TypeError:
        assert _rows(app) == before
        return
    rec = app.store.get(job.id)
    assert rec is not None
    assert (rec.args == [value]) if where == "args" else (rec.kwargs == {"v": value})


@pytest.mark.parametrize("option", ["priority", "max_attempts", "delay-inf", "delay-huge"])
def test_out_of_range_options_are_refused_and_write_nothing(app: jobrun.App, store_path: str,
                                                            option: str) -> None:
    """Options SQLite or the clock cannot hold: a TypeError/ValueError at enqueue, no row (an
    OverflowError escapes today for ints past 2**63; an infinite delay is stored and then
    breaks `jobrun ls` for the whole store)."""
    kw: dict[str, Any] = {"priority": {"priority": 2 ** 70}, "max_attempts": {"max_attempts": 2 ** 70},
                          "delay-inf": {"delay": math.inf},
                          "delay-huge": {"delay": 1e300}}[option]
    app.enqueue("torture.hostile:t", args=[0])
    before = _rows(app)
    try:
        with pytest.raises((TypeError, ValueError)):
            app.enqueue("torture.hostile:t", args=[1], **kw)
        assert _rows(app) == before
    finally:
        r = subprocess.run([sys.executable, "-m", "jobrun.cli", "ls", "--json", "--store",
                            store_path], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr


def _json_values() -> Any:
    keys = st.one_of(_TEXT, st.integers(), st.booleans(), st.none(), st.floats())
    leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _TEXT,
                       st.integers(-(2 ** 200), 2 ** 200), st.binary(max_size=3),
                       st.frozensets(st.integers(), max_size=2))
    value: Any = st.deferred(lambda: st.one_of(
        leaves, leaves, leaves, st.lists(value, max_size=4), st.tuples(value, value),
        st.dictionaries(keys, value, max_size=4)))
    return value


def test_random_values_are_stored_as_json_or_refused_with_type_error(app: jobrun.App,
                                                                     long: bool) -> None:
    """(Lone surrogates are left to their own test above.)"""
    app.enqueue("torture.hostile:t", args=[0])
    stats = {"stored": 0, "refused": 0}

    @_hyp(long, 300, 5000)
    @given(_json_values())
    def run(value: Any) -> None:
        before = _rows(app)
        try:
            job = app.enqueue("torture.hostile:t", args=[value])
        except TypeError:
            stats["refused"] += 1
            assert _rows(app) == before
            return
        stats["stored"] += 1
        expected = json.loads(json.dumps([value], allow_nan=False,
                                          default=lambda o: pytest.fail(f"stored {o!r}")))
        assert app.store.get(job.id).args == expected  # type: ignore[union-attr]
    run()
    print(f"random values: {stats}")


_reg = jobrun.App()  # registers the tasks below (each test builds its own App on its store)


@_reg.task
def hostile_len(s: str) -> int:
    return len(s)


@_reg.task
def hostile_ok(x: Any) -> Any:
    return x


def _settings() -> Settings:
    return parse('[jobrun]\npoll = "100ms"\nshutdown_timeout = "5s"\n'
                 "[queues.default]\nconcurrency = 2\nmax_attempts = 2\n")[0]


def test_a_huge_payload_round_trips(store_path: str, long: bool) -> None:
    """Up to jobrun's own limit (16 MiB of JSON: larger is refused, see test_api.py), a 15 MB
    string (5 MB in normal runs) is stored and run; past SQLite's length limit (1e9 bytes by
    default; lowered here to 1 MB) enqueue raises StoreError and stores nothing."""
    size = 15_000_000 if long else 5_000_000
    big = "é" + "x" * (size - 1)
    producer = jobrun.App(store_path, settings=_settings())
    try:
        t0 = time.perf_counter()
        job = producer.enqueue(hostile_len.name, args=[big])
        t_enqueue = time.perf_counter() - t0
        producer.start()
        t0 = time.perf_counter()
        assert job.result(timeout=120) == size
        t_run = time.perf_counter() - t0
        producer.stop(10)
        conn = producer.store.connection()
        stored = conn.execute("SELECT length(args) FROM jobs WHERE id = ?", (job.id,)).get
        assert stored == size + 4  # ["…"]
        before = conn.execute("SELECT count(*) FROM jobs").get
        conn.limit(apsw.SQLITE_LIMIT_LENGTH, 1_000_000)
        with pytest.raises(StoreError) as too_big:
            producer.enqueue(hostile_len.name, args=["y" * 2_000_000])
        assert isinstance(too_big.value.__cause__, apsw.TooBigError), too_big.value.__cause__
        assert conn.execute("SELECT count(*) FROM jobs").get == before
    finally:
        producer.close()
    print(f"{size / 1e6:.0f} MB payload: enqueue {t_enqueue:.2f}s, claim+run+result "
          f"{t_run:.2f}s; past the length limit: {too_big.value}")


# == 4. store files that are garbage or too new ===============================================
def _real_store(path: Path) -> bytes:
    a = jobrun.App(str(path))
    a.enqueue("torture.hostile:t", args=[1])
    a.close()
    return path.read_bytes()


def _garbage(kind: str, folder: Path) -> Path:
    rng = random.Random(kind)
    p = folder / f"{kind}.db"
    real = _real_store(folder / f"real-for-{kind}.db")
    if kind == "random":
        p.write_bytes(rng.randbytes(8192))
    elif kind == "text":
        p.write_bytes(b"my notes\n" * 500)
    elif kind == "sqlite-header-then-garbage":
        p.write_bytes(b"SQLite format 3\x00" + rng.randbytes(8192))
    elif kind == "truncated-store":
        p.write_bytes(real[:1000])
    elif kind == "truncated-store-page":
        p.write_bytes(real[:4096])
    elif kind == "header-only":
        p.write_bytes(real[:100])
    elif kind == "one-byte":
        p.write_bytes(b"\n")
    elif kind == "newer-jobrun-store":
        p.write_bytes(real)
        c = apsw.Connection(str(p))
        c.execute("PRAGMA user_version = 99")
        c.close()
    elif kind in ("newer-wal", "newer-delete"):
        c = apsw.Connection(str(p))
        c.execute(f"PRAGMA journal_mode = {kind.split('-')[1]}").fetchall()
        c.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY)")
        c.execute("PRAGMA user_version = 99")
        c.close()
    else:
        raise AssertionError(kind)
    assert not side_files(p)
    return p


GARBAGE = ["random", "text", "sqlite-header-then-garbage", "truncated-store",
           "truncated-store-page", "header-only", "one-byte", "newer-jobrun-store", "newer-wal",
           "newer-delete"]


@pytest.mark.parametrize("kind", GARBAGE)
def test_a_garbage_or_newer_store_is_refused_untouched(tmp_path: Path, kind: str) -> None:
    p = _garbage(kind, tmp_path)
    sha, st_before = sha_of(p), os.stat(p)
    with pytest.raises(StoreError) as refused:
        a = jobrun.App(str(p))
        try:
            a.enqueue("torture.hostile:t", args=[1])
        finally:
            a.close()
    assert str(p) in str(refused.value)
    if kind.startswith("newer"):
        assert "newer" in str(refused.value)
    assert sha_of(p) == sha, f"{kind}: the file was changed"
    assert os.stat(p).st_mtime_ns == st_before.st_mtime_ns
    # Checked while the StoreError (and its traceback) is alive, as in a producer that caught
    # and logged it: SqliteStore._open must close its connection before raising.
    assert not side_files(p), f"{kind}: left {side_files(p)} (a connection left open)"
    r = subprocess.run([sys.executable, "-m", "jobrun.cli", "ls", "--store", str(p)],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 1 and str(p) in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert sha_of(p) == sha and not side_files(p)


def test_random_bytes_as_a_store_are_refused_untouched(tmp_path: Path, long: bool) -> None:
    """(An empty file is a new store by design: jobrun creates it empty itself.)"""
    n = [0]

    @_hyp(long, 60, 1000)
    @given(st.binary(min_size=2, max_size=5000))
    def run(data: bytes) -> None:
        n[0] += 1
        p = tmp_path / f"g{n[0]}.db"
        p.write_bytes(data)
        with pytest.raises(StoreError):
            SqliteStore(str(p)).close()
        assert p.read_bytes() == data and not side_files(p)
        p.unlink()
    run()


# == 5. rows naming os:system & co. ==========================================================
BENIGN = '''
@app.task
def ok(x):
    return x


@app.task
def modules():
    return sorted(m for m in sys.modules if m.startswith("tt_"))
'''

EVIL = '''
import os
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "EVIL-IMPORTED"), "w") as f:
    f.write(str(os.getpid()))


def run(*a, **k):
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "EVIL-RAN"), "w") as f:
        f.write("ran")
'''


def _hostile_calls(side: Path) -> list[tuple[str, list[Any]]]:
    return [("os:system", [f"touch {side}-system"]),
            ("subprocess:run", [["touch", f"{side}-run"]]),
            ("builtins:exec", [f"open({str(side) + '-exec'!r}, 'w').close()"]),
            ("builtins:eval", ["__import__('tt_evil')"]),
            ("importlib:import_module", ["tt_evil"]),
            ("tt_evil:run", []),
            ("tt_evil", []),
            ("os.system", [f"touch {side}-dotted"]),
            ("posix:system", [f"touch {side}-posix"])]


def test_a_service_never_runs_or_imports_what_a_row_names(tmp_path: Path) -> None:
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    write_tasks_module(cfg_dir, "tt_benign", BENIGN)
    (cfg_dir / "tt_evil.py").write_text(EVIL, encoding="utf-8")  # importable, if anyone would
    store = tmp_path / "jobs.db"
    cfg = write_config(cfg_dir, store, ["tt_benign"], max_attempts=3,
                       extra='[queues.proc]\nexecutor = "process"\nconcurrency = 1\n')
    side = tmp_path / "pwned"
    producer = jobrun.App(str(store))
    hostile = []
    for queue in ("default", "proc"):
        for task, args in _hostile_calls(side):
            hostile.append(producer.enqueue(task, args=args, queue=queue).id)
    # And a row rewritten in the store file itself, as a foreign writer could.
    forged = producer.enqueue("tt_benign:ok", args=["x"]).id
    db = plain(store)
    db.execute("UPDATE jobs SET task = 'os:system', args = ? WHERE id = ?",
               (json.dumps([f"touch {side}-forged"]), forged))
    hostile.append(forged)
    good = [producer.enqueue("tt_benign:ok", args=[i], queue=q).id
            for i, q in enumerate(["default", "proc"])]
    svc = ServiceProc(cfg, tmp_path / "service.log")
    try:
        wait_serving(str(store), svc)
        marks = ",".join("?" * len(hostile))

        def settled() -> bool:
            dead = db.execute(f"SELECT count(*) FROM jobs WHERE id IN ({marks}) "
                              "AND state = 'dead'", hostile).get
            done = db.execute("SELECT count(*) FROM jobs WHERE id IN (?, ?) AND state = "
                              "'succeeded'", good).get
            return dead == len(hostile) and done == 2
        wait_for(settled, 30, "the hostile rows to go dead and the good ones to succeed")
        probes = {q: producer.enqueue("tt_benign:modules", queue=q) for q in ("default", "proc")}
        loaded = {q: j.result(timeout=30) for q, j in probes.items()}
        svc.send(15)
        assert svc.wait(30) == 0, svc.log_text()[-3000:]
        rows = audit_rows(db)
        for job_id in hostile:
            errors = rows[job_id]["errors"]
            assert rows[job_id]["attempts"] <= 1, rows[job_id]
            assert errors and errors[-1]["type"] == "UnknownTask", (rows[job_id]["task"], errors)
        assert loaded["default"] == ["tt_benign"] and loaded["proc"] == ["tt_benign"], loaded
        made = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("pwned"))
        assert not made, f"side effects: {made}"
        assert not (cfg_dir / "EVIL-IMPORTED").exists() and not (cfg_dir / "EVIL-RAN").exists()
    finally:
        svc.kill()
        db.close()
        producer.close()


def test_an_embedded_service_never_imports_what_a_row_names(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    folder = tmp_path / "mods"
    folder.mkdir()
    (folder / "tt_evil_inproc.py").write_text(EVIL, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    side = tmp_path / "pwned"
    producer = jobrun.App(str(tmp_path / "jobs.db"), settings=_settings())
    try:
        calls = _hostile_calls(side) + [("tt_evil_inproc:run", []),
                                        ("importlib:import_module", ["tt_evil_inproc"])]
        jobs = [producer.enqueue(t, args=a) for t, a in calls]
        ok = producer.enqueue(hostile_ok.name, args=["fine"])
        producer.start()
        assert ok.result(timeout=20) == "fine"
        for j in jobs:
            with pytest.raises(jobrun.JobFailed):
                j.result(timeout=20)
            assert j.refresh().state == jobrun.JobState.DEAD
            rec = producer.store.get(j.id)
            assert rec is not None and rec.errors[-1]["type"] == "UnknownTask", rec.errors
    finally:
        producer.close()
    assert "tt_evil_inproc" not in sys.modules and "tt_evil" not in sys.modules
    assert not (folder / "EVIL-IMPORTED").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("pwned")]


# == 6. rows with malformed JSON (a foreign producer, a hand edit) =============================
MALFORMED = {
    "args-not-json": ("args", "not json"),
    "args-deeply-nested": ("args", "[" * 100_000 + "]" * 100_000),
    "args-not-an-array": ("args", '{"a": 1}'),
    "kwargs-not-json": ("kwargs", "{"),
    "kwargs-not-an-object": ("kwargs", "[1]"),
    "options-not-json": ("options", "?"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_row_does_not_stop_the_queue(store_path: str, case: str) -> None:
    column, text = MALFORMED[case]
    producer = jobrun.App(store_path, settings=_settings())
    try:
        first = producer.enqueue(hostile_ok.name, args=["first"])
        bad = producer.enqueue(hostile_ok.name, args=["to be spoiled"])
        db = plain(store_path)
        try:
            db.execute(f"UPDATE jobs SET {column} = ? WHERE id = ?", (text, bad.id))
        finally:
            db.close()
        last = producer.enqueue(hostile_ok.name, args=["last"])
        producer.start()
        assert first.result(timeout=5) == "first"
        assert last.result(timeout=5) == "last"
        wait_for(lambda: (producer.store.status(bad.id) or ("?",))[0] == "dead", 5,
                 "the malformed job to go dead")
    finally:
        producer.close()


def test_jobrun_ls_lists_a_store_with_a_malformed_row(store_path: str) -> None:
    producer = jobrun.App(store_path)
    good = producer.enqueue("torture.hostile:t", args=[1]).id
    bad = producer.enqueue("torture.hostile:t", args=[2]).id
    producer.close()
    db = plain(store_path)
    db.execute("UPDATE jobs SET args = 'not json' WHERE id = ?", (bad,))
    db.close()
    r = subprocess.run([sys.executable, "-m", "jobrun.cli", "ls", "--json", "--store",
                        store_path], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert {good, bad} <= {j["id"] for j in json.loads(r.stdout)}


# == 7. a store folder writable by others =====================================================
# Documented (README, Guarantees): a store in a folder that others may write to is used, with
# a warning (once per folder and process) naming the folder and its mode; group-writable counts
# as "others". A private folder says nothing.
def _open_and_enqueue(path: Path) -> str:
    """Open (or create) a store, enqueue; returns what jobrun logged at WARNING and above."""
    cap = Capture()
    logging.getLogger("jobrun").addHandler(cap)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            a = jobrun.App(str(path))
            try:
                a.enqueue("torture.hostile:t", args=[1])
            finally:
                a.close()
    finally:
        logging.getLogger("jobrun").removeHandler(cap)
    return cap.text(logging.WARNING) + "".join(f"\n{w.message}" for w in caught)


def _folder_warnings(said: str, folder: Path) -> list[str]:
    """The lines about the store's folder (a store no service ever used is warned about too,
    naming the store's path: that one is not about the folder)."""
    return [ln for ln in said.splitlines() if str(folder) in ln and "no service" not in ln]


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770, 0o730], ids=lambda m: f"{m:o}")
def test_a_store_in_a_folder_others_may_write_is_used_with_one_warning(tmp_path: Path,
                                                                        mode: int) -> None:
    folder = tmp_path / f"shared-{mode:o}"
    folder.mkdir()
    os.chmod(folder, mode)
    said = _open_and_enqueue(folder / "jobs.db")
    lines = _folder_warnings(said, folder)
    assert len(lines) == 1, f"expected one warning naming {folder}: {said!r}"
    assert f"{stat.S_IMODE(mode):o}" in lines[0] and "writable" in lines[0], lines[0]
    again = _open_and_enqueue(folder / "jobs.db")  # once per folder and process
    assert not _folder_warnings(again, folder)
    db = plain(folder / "jobs.db")
    try:
        assert integrity(db) == "ok" and len(audit_rows(db)) == 2
    finally:
        db.close()
    assert stat.S_IMODE(os.stat(folder / "jobs.db").st_mode) == 0o600


def test_an_existing_store_in_a_folder_made_shared_is_used_with_a_warning(tmp_path: Path
                                                                           ) -> None:
    folder = tmp_path / "was-private"
    folder.mkdir(mode=0o700)
    store = folder / "jobs.db"
    assert not _folder_warnings(_open_and_enqueue(store), folder)
    os.chmod(folder, 0o777)
    # (Warned once per folder and process: a folder that turns shared later in the same
    # process is not said again. A new process would say it.)
    r = subprocess.run([sys.executable, "-m", "jobrun.cli", "ls", "--json", "--store",
                        str(store)], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0 and len(json.loads(r.stdout)) == 1, r.stderr
    assert str(folder) in r.stderr and "writable" in r.stderr, r.stderr


def test_a_store_in_a_private_folder_is_not_warned_about(tmp_path: Path) -> None:
    folder = tmp_path / "private"
    folder.mkdir(mode=0o700)
    os.chmod(folder, 0o755)  # others may read and enter, not write
    assert not _folder_warnings(_open_and_enqueue(folder / "jobs.db"), folder)
