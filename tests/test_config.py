"""jobrun.toml: typed settings, and errors that name the file, line, key and reason."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from conftest import run_cli
from jobrun import config
from jobrun.config import parse


def example_text() -> str:
    return resources.files("jobrun").joinpath("jobrun.toml.example").read_text("utf-8")


def uncomment(text: str) -> str:
    return "\n".join(re.sub(r"^# ?((\[|[a-z_]+ =|\[\[))", r"\1", line)
                     for line in text.splitlines())


def test_example_documents_every_key_and_parses() -> None:
    text = example_text()
    settings, problems = parse(uncomment(text), "example.toml")
    assert problems == []
    assert settings.cron[0].timezone == "Europe/Berlin" and settings.tasks["backup"].timeout == 3600
    keys = set(re.findall(r"^#? ?([a-z_]+) =", text, re.M))
    for known in (config._JOBRUN | config._QUEUE | config._TASK | config._CRON) - {"name"}:
        assert known in keys, f"{known} is not documented in jobrun.toml.example"


def test_defaults_without_a_file() -> None:
    s, problems = parse("", "empty.toml")
    assert problems == [] and s.shutdown_timeout == 30 and s.durability == "normal"
    assert s.queue("anything").concurrency == 8


@pytest.mark.parametrize("text, where, reason", [
    ('[jobrun]\nshutdown_timeout = "soon"\n', "t.toml:2: [jobrun.shutdown_timeout]",
     "bad duration"),
    ('[jobrun]\ndurability = "fast"\n', "t.toml:2: [jobrun.durability]", "normal"),
    ('[jobrun]\nimport = ["ok", "not a module"]\n', "t.toml:2: [jobrun.import]",
     "not a module name"),
    ('[queues.default]\nconcurrency = "8"\n', "t.toml:2: [queues.default.concurrency]",
     "must be int"),
    ('[queues.default]\nconcurrency = 0\n', "[queues.default.concurrency]", "at least 1"),
    ('[queues.default]\nexecutor = "fibers"\n', "[queues.default.executor]", "thread"),
    ('[queues.q]\nrate_limit = "fast"\n', "[queues.q.rate_limit]", "not a rate"),
    ('[[cron]]\nname = "a"\nschedule = "61 * * * *"\ntask = "x:y"\n',
     "t.toml:3: [cron.0.schedule]", "bad minute"),
    ('[[cron]]\nname = "a"\nschedule = "0 * * * *"\ntimezone = "Mars/Base"\ntask = "x:y"\n',
     "t.toml:4: [cron.0.timezone]", "unknown time zone"),
    ('[[cron]]\nname = "a"\nevery = "1s"\ntask = "x:y"\n\n[[cron]]\nname = "a"\n'
     'every = "2s"\ntask = "x:z"\n', "t.toml:7: [cron.1.name]", "duplicate cron name"),
    ('[[cron]]\nname = "a"\ntask = "x:y"\n', "[cron.0.schedule]", "exactly one of"),
    ('[[cron]]\nname = "a"\nevery = "1s"\n', "[cron.0.task]", "exactly one of task or command"),
    ('[[cron]]\nname = "a"\nevery = "1s"\ntask = "x:y"\nmisfire = "twice"\n',
     "t.toml:5: [cron.0.misfire]", "skip"),
    ('[tasks.backup]\ncommand = "backup.sh"\n', "t.toml:2: [tasks.backup.command]",
     "list of strings"),
    ('[metrics]\nlisten = "nowhere"\n', "[metrics.listen]", "HOST:PORT"),
    ('[alerts]\ndead_per_hour = -1\n', "[alerts]", "dead_per_hour"),
    ('[jobrun]\nstroe = "x.db"\n', "t.toml:2: [jobrun.stroe]", "unknown key 'stroe'"),
    ('[workers]\nn = 1\n', "[workers]", "unknown key"),
    ('[jobrun\n', "t.toml:1", "not valid TOML"),
])
def test_errors_name_file_line_key_and_reason(text: str, where: str, reason: str) -> None:
    _, problems = parse(text, "t.toml")
    assert problems, f"no problem found in {text!r}"
    msgs = [str(p) for p in problems]
    assert any(where in m and reason in m for m in msgs), msgs


def test_all_problems_are_reported_at_once() -> None:
    _, problems = parse('[jobrun]\npoll = "x"\nlease = "y"\n[queues.a]\nconcurrency = -1\n',
                        "t.toml")
    assert len(problems) == 3


def test_durations() -> None:
    assert config.duration("1h30m") == 5400 and config.duration(5) == 5.0
    assert config.duration("250ms") == 0.25 and config.duration("7d") == 7 * 86400
    for bad in ("", "soon", "-1s", True, None):
        with pytest.raises(ValueError):
            config.duration(bad)


# -- bounds: a typo must not pass `jobrun check` ---------------------------------------------
CRON = '[[cron]]\nname = "tick"\nevery = {v}\ntask = "x:y"\n'


@pytest.mark.parametrize("text, where, reason", [
    (CRON.format(v='"1ms"'), "t.toml:3: [cron.0.every]", "at least 1s"),
    (CRON.format(v='"0.5s"'), "t.toml:3: [cron.0.every]", "at least 1s"),
    (CRON.format(v='"100000000d"'), "t.toml:3: [cron.0.every]", "at most 366d"),
    (CRON.format(v='"367d"'), "t.toml:3: [cron.0.every]", "at most 366d"),
    (CRON.format(v='0'), "t.toml:3: [cron.0.every]", "at least 1s"),
    ('[jobrun]\nlease = 0\n', "t.toml:2: [jobrun.lease]", "at least 1s"),
    ('[jobrun]\nlease = "1ms"\n', "t.toml:2: [jobrun.lease]", "at least 1s"),
    ('[jobrun]\nlease = -3\n', "t.toml:2: [jobrun.lease]", ">= 0"),
    ('[jobrun]\nlease = "100000000d"\n', "t.toml:2: [jobrun.lease]", "at most 1d"),
    ('[jobrun]\npoll = 0\n', "t.toml:2: [jobrun.poll]", "at least 10ms"),
    ('[jobrun]\npoll = "2h"\n', "t.toml:2: [jobrun.poll]", "at most 5m"),
    ('[jobrun]\nshutdown_timeout = "400d"\n', "t.toml:2: [jobrun.shutdown_timeout]",
     "at most 1d"),
    ('[jobrun]\nmisfire_grace = "1000d"\n', "t.toml:2: [jobrun.misfire_grace]", "at most 366d"),
    ('[jobrun]\nretention = 0\n', "t.toml:2: [jobrun.retention]", "at least 1m"),
    ('[jobrun]\ndead_retention = "100000000d"\n', "t.toml:2: [jobrun.dead_retention]",
     "at most 36600d"),
    ('[jobrun]\nstore = ""\n', "t.toml:2: [jobrun.store]", "empty"),
    ('[queues.q]\nretry_base = 0\n', "t.toml:2: [queues.q.retry_base]", "at least 1ms"),
    ('[queues.q]\nretry_cap = "100000000d"\n', "t.toml:2: [queues.q.retry_cap]", "at most 366d"),
    ('[queues.q]\nretry_base = "10s"\nretry_cap = "1s"\n', "t.toml:3: [queues.q.retry_cap]",
     "retry_base"),
    ('[queues.q]\ntimeout = 0\n', "t.toml:2: [queues.q.timeout]", "at least 10ms"),
    # found by a stranger: past 64 bits a round failed forever (OverflowError), check said ok
    ('[queues.q]\nprefetch = 99999999999999999999\n', "t.toml:2: [queues.q.prefetch]",
     "must be at most 1,000,000"),
    ('[queues.q]\nprefetch = -1\n', "t.toml:2: [queues.q.prefetch]", "must be 0 or more"),
    ('[queues.q]\nconcurrency = 100000000\n', "t.toml:2: [queues.q.concurrency]",
     "must be at most 10,000"),
    ('[tasks.b]\ncommand = ["b"]\ntimeout = "100000000d"\n', "t.toml:3: [tasks.b.timeout]",
     "at most 366d"),
    # a schedule is bounded by its grammar: at most once a minute, and a date that exists
    ('[[cron]]\nname = "a"\nschedule = "*/0 * * * *"\ntask = "x:y"\n',
     "t.toml:3: [cron.0.schedule]", "bad minute field"),
    ('[[cron]]\nname = "a"\nschedule = "0 0 31 2 *"\ntask = "x:y"\n',
     "t.toml:3: [cron.0.schedule]", "no such date"),
])
def test_bounds_name_key_line_and_reason(text: str, where: str, reason: str) -> None:
    _, problems = parse(text, "t.toml")
    msgs = [str(p) for p in problems]
    assert any(where in m and reason in m for m in msgs), msgs


@pytest.mark.parametrize("text", [
    CRON.format(v='"1s"'), CRON.format(v='"366d"'), CRON.format(v='"1m"'),
    '[jobrun]\nlease = "1s"\npoll = "10ms"\nshutdown_timeout = 0\nmisfire_grace = 0\n',
    '[jobrun]\nretention = "1m"\ndead_retention = "36600d"\n',
    '[queues.q]\nretry_base = 0.01\nretry_cap = 0.01\ntimeout = 0.3\n',
    '[queues.q]\nprefetch = 1000000\nconcurrency = 10000\n', '[queues.q]\nprefetch = 0\n',
])
def test_bounds_accept_the_edges(text: str) -> None:
    assert parse(text, "t.toml")[1] == []


@pytest.mark.parametrize("every", ['"1ms"', '"100000000d"'])
def test_check_and_start_refuse_an_unbounded_every(tmp_path: Path, every: str) -> None:
    cfg = tmp_path / "jobrun.toml"
    cfg.write_text('[jobrun]\nstore = "jobs.db"\n\n' + CRON.format(v=every))
    for cmd in ("check", "start"):
        r = run_cli(cmd, "--config", str(cfg), timeout=30)
        assert r.returncode == 78, (cmd, r.stdout, r.stderr)
        assert f"{cfg}:6: [cron.0.every]" in r.stdout + r.stderr, (cmd, r.stdout, r.stderr)
    assert not (tmp_path / "jobs.db").exists()  # start refused before opening the store


def test_a_bad_value_falls_back_to_its_default_in_the_settings() -> None:
    """So a producer may use the valid parts of a broken file (load_for_producer)."""
    s, problems = parse('[jobrun]\ndurability = "fast"\nlog_format = "xml"\nlease = 0\n'
                        '[queues.q]\nconcurrency = 0\nexecutor = "fibers"\n', "t.toml")
    assert len(problems) == 5
    assert (s.durability, s.log_format, s.lease) == ("normal", "text", 60.0)
    assert (s.queues["q"].concurrency, s.queues["q"].executor) == (8, "thread")


def test_ui_show_args() -> None:
    s, problems = parse("[ui]\nshow_args = false\n", "ui.toml")
    assert problems == [] and s.show_args is False
    assert parse("", "empty.toml")[0].show_args is True
    _, problems = parse("[ui]\nshow_args = \"no\"\nshow = 1\n", "bad.toml")
    said = " ".join(str(p) for p in problems)
    assert "show_args" in said and "must be bool" in said and "unknown key 'show'" in said
