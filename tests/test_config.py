"""jobrun.toml: typed settings, and errors that name the file, line, key and reason."""

from __future__ import annotations

import re
from importlib import resources

import pytest

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
