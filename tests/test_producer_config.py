"""A producer (`jobrun.App()` in a web app's tasks module) needs only the store from
$JOBRUN_CONFIG: a bad edit elsewhere in the file is one warning, not an import error."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import jobrun
from jobrun import config
from jobrun.config import load_for_producer
from jobrun.errors import ConfigError
from jobrun.store.sqlite import SqliteStore

TASKS = """
import jobrun

app = jobrun.App()

@app.task
def hello(x: int) -> int:
    return x
"""

WEB = """
import logging, tasks, jobrun
again = jobrun.App()             # a second App: the warning is not said twice
job = tasks.hello.enqueue(41)
print(job.id, tasks.app.store_path, again.store_path)
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


@pytest.mark.parametrize("body, line, reason", [
    # valid TOML, one bad value: the store is still read from it
    ('[jobrun]\nstore = "jobs.db"\npoll = "soon"\n', 3, "bad duration"),
    # not TOML at all: the store is found by a line scan of [jobrun]
    ('[jobrun]\nstore = "jobs.db"\nimport = ["tasks"]\n\n[queues.default\nconcurrency = 8\n',
     5, "not valid TOML"),
])
def test_a_tasks_module_imports_and_enqueues_with_a_broken_config(
        tmp_path: Path, body: str, line: int, reason: str) -> None:
    # Given a tasks module doing `App()` and a broken $JOBRUN_CONFIG naming the store
    write(tmp_path / "tasks.py", TASKS)
    write(tmp_path / "web.py", WEB)
    cfg = write(tmp_path / "jobrun.toml", body)
    env = {k: v for k, v in os.environ.items() if k != "JOBRUN_STORE"}
    env["JOBRUN_CONFIG"] = str(cfg)
    # When the web app imports it and enqueues
    r = subprocess.run([sys.executable, "web.py"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=60)
    # Then the job is in the config's store, and one warning names file:line and the reason
    assert r.returncode == 0, r.stderr
    job_id, path, again = r.stdout.split()
    store = str(tmp_path / "jobs.db")
    assert path == again == os.path.realpath(store)
    s = SqliteStore(store, readonly=True)
    assert s.get(int(job_id)) is not None
    s.close()
    warnings = [ln for ln in r.stderr.splitlines() if str(cfg) in ln]
    assert len(warnings) == 1, r.stderr
    assert f"{cfg}:{line}" in warnings[0] and reason in warnings[0], warnings


def test_from_config_stays_strict(tmp_path: Path) -> None:
    cfg = write(tmp_path / "jobrun.toml", '[jobrun]\nstore = "jobs.db"\npoll = "soon"\n')
    with pytest.raises(ConfigError, match="poll"):
        jobrun.App.from_config(cfg)


def test_resolve_store_reads_a_broken_env_config(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(tmp_path / "jobrun.toml", '[jobrun]\nstore = "s.db"\n[queues.q\n')
    monkeypatch.setenv("JOBRUN_CONFIG", str(cfg))
    assert config.resolve_store() == str(tmp_path / "s.db")


def test_the_valid_parts_are_kept(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", '[jobrun]\nstore = "/srv/j.db"\ndurability = "full"\n'
                                      'lease = 0\n[queues.mail]\nconcurrency = 2\n'
                                      'executor = "fibers"\n')
    s = load_for_producer(str(cfg))
    assert (s.store, s.durability, s.lease) == ("/srv/j.db", "full", 60.0)
    assert (s.queues["mail"].concurrency, s.queues["mail"].executor) == (2, "thread")


def test_a_good_file_is_read_as_load_reads_it(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", '[jobrun]\nstore = "j.db"\n[queues.q]\nconcurrency = 3\n')
    assert load_for_producer(str(cfg)) == config.load(str(cfg))


@pytest.mark.parametrize("body, store", [
    ('[jobrun]\nstore = "a.db"  # here\npoll =\n', "a.db"),
    ("[jobrun]\nstore = 'b.db'\n[oops\n", "b.db"),
    ('[ jobrun ]  # main\n  store="c \\u00e9.db"\n[x\n', "c \u00e9.db"),
    ('jobrun.store = "d.db"\n[x\n', "d.db"),
    ('[jobrun]\n"store" = "e.db"\n[x\n', "e.db"),
    # a [jobrun] and a store line inside a multi-line string are text, not the table
    ('[tasks.t]\nnote = """\n[jobrun]\nstore = "wrong.db"\n"""\n[jobrun]\nstore = "f.db"\n'
     '[x\n', "f.db"),
    # store under another table is not the store
    ('[jobrun]\nstore = "g.db"\n[queues.q]\nstore = "wrong.db"\n[x\n', "g.db"),
])
def test_the_line_scan_finds_the_store(tmp_path: Path, body: str, store: str) -> None:
    cfg = write(tmp_path / "c.toml", body)
    assert load_for_producer(str(cfg)).store == str(tmp_path / store)


@pytest.mark.parametrize("body, reason", [
    ('[jobrun]\nstore = "a.db\n', "store"),                 # the store line itself is broken
    ('[jobrun]\nstore = 5\n', "store"),                     # valid TOML, store not a path
    ('jobrun = 5\n', "jobrun"),                             # no [jobrun] table
    ('[jobrun]\nstore = "a.db"\nstore = "b.db"\n', "store"),  # which one?
    ('jobrun = { store = "a.db" }\n[x\n', "store"),          # not a form the scan reads
    ('[[jobrun]]\nstore = "a.db"\n[x\n', "store"),               # an array, not the table
])
def test_no_store_found_is_an_error(tmp_path: Path, body: str, reason: str) -> None:
    cfg = write(tmp_path / "c.toml", body)
    with pytest.raises(ConfigError, match=reason) as e:
        load_for_producer(str(cfg))
    assert str(cfg) in str(e.value)


def test_not_utf8(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 in a comment are a warning; in the store's path, an error."""
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(b'# caf\xe9\n[jobrun]\nstore = "j.db"\n')
    assert load_for_producer(str(cfg)).store == str(tmp_path / "j.db")
    cfg.write_bytes(b'[jobrun]\nstore = "caf\xe9.db"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_for_producer(str(cfg))
    cfg.write_bytes(b'[jobrun]\nstore = "caf\xe9.db"\n[x\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_for_producer(str(cfg))
    assert load_for_producer(str(cfg), store_known=True).store is not None


def test_a_broken_file_without_any_store_uses_the_default(tmp_path: Path) -> None:
    """As the same file fixed would: it names no store, so the default is the store."""
    cfg = write(tmp_path / "c.toml", '[jobrun]\nimport = ["x"\n')
    assert load_for_producer(str(cfg)).store is None


def test_warned_once_per_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a = write(tmp_path / "a.toml", '[jobrun]\nstore = "a.db"\npoll = "soon"\nlease = "x"\n')
    b = write(tmp_path / "b.toml", '[jobrun]\nstore = "b.db"\n[x\n')
    with caplog.at_level(logging.WARNING, logger="jobrun"):
        for _ in range(3):
            load_for_producer(str(a))
            load_for_producer(str(b))
    msgs = [r.getMessage() for r in caplog.records if r.name.startswith("jobrun")]
    assert len(msgs) == 2, msgs
    assert f"{a}:3" in msgs[0] and "1 more" in msgs[0] and str(tmp_path / "a.db") in msgs[0]
    assert f"{b}:3" in msgs[1]


# -- the line scan, fuzzed: never a crash, never a store tomllib would not read -----------------
from hypothesis import given  # noqa: E402
from hypothesis import settings as hsettings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from jobrun.tomlscan import find_store  # noqa: E402


def toml_string(s: str) -> str:
    out = s.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() or c == " " else f"\\U{ord(c):08x}"
                         for c in out) + '"'


@hsettings(max_examples=300, deadline=None)
@given(st.text())
def test_the_scan_never_raises_on_random_text(text: str) -> None:
    found = find_store(text)
    assert found.value is None or found.doubt is None


@hsettings(max_examples=300, deadline=None)
@given(store=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1),
       before=st.sampled_from(["", '[tasks.t]\nnote = """\n[jobrun]\nstore = "no"\n"""\n',
                               "[queues.q]\nstore = 'no'\n", "x = 1\n", "[[cron]]\nname='a'\n"]),
       header=st.sampled_from(["[jobrun]", "[ jobrun ] # x", '["jobrun"]']),
       after=st.sampled_from(["", "poll = 1\n", "[queues.default]\nconcurrency = 1\n"]))
def test_the_scan_agrees_with_tomllib(store: str, before: str, header: str, after: str) -> None:
    import tomllib

    text = f"{before}{header}\nstore = {toml_string(store)}\n{after}"
    assert tomllib.loads(text)["jobrun"]["store"] == store
    found = find_store(text + "[broken\n")  # the same file, then broken
    assert found.doubt is None and found.value == store


def test_a_known_store_needs_nothing_from_the_file(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With $JOBRUN_STORE (or App(path)) the file's store does not matter: a warning only."""
    cfg = write(tmp_path / "c.toml", '[jobrun]\nstore = "a.db\n')
    monkeypatch.setenv("JOBRUN_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match="store"):
        jobrun.App()
    assert jobrun.App(str(tmp_path / "given.db")).store_path == str(tmp_path / "given.db")
    monkeypatch.setenv("JOBRUN_STORE", str(tmp_path / "env.db"))
    assert jobrun.App().store_path == str(tmp_path / "env.db")
    assert config.resolve_store() == str(tmp_path / "env.db")
