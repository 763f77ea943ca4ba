"""The task options' one table (jobrun/options.py) is what every entry point reads."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

from jobrun import App
from jobrun.errors import InvalidJob, InvalidValue
from jobrun.options import DECLARED, FILE_OPTIONS, JOB_OPTIONS, OPTIONS
from jobrun.registry import TaskSpec


def test_every_per_job_option_is_a_keyword_of_enqueue() -> None:
    params = set(inspect.signature(App.enqueue).parameters)
    assert params >= JOB_OPTIONS, JOB_OPTIONS - params
    assert FILE_OPTIONS <= JOB_OPTIONS


def test_spec_options_are_taskspec_fields_and_the_rest_go_to_extra(tmp_path: Path) -> None:
    fields = {f.name for f in dataclasses.fields(TaskSpec)}
    assert {o.name for o in OPTIONS if o.spec} <= fields
    app = App(str(tmp_path / "s.db"))

    @app.task(queue="mail", timeout=5, concurrency_key="{user}", key_concurrency=2)
    def send(user: int) -> None: ...

    assert (send.spec.queue, send.spec.timeout) == ("mail", 5.0)
    assert send.spec.extra == {"concurrency_key": "{user}", "key_concurrency": 2}
    assert set(DECLARED) >= {"queue", "timeout", "concurrency_key"}


@pytest.mark.parametrize("bad, word", [({"priority": "high"}, "priority"),
                                       ({"timeout": 0}, "timeout"),
                                       ({"executor": "gpu"}, "executor"),
                                       ({"colour": "red"}, "colour"),
                                       ({"key_concurrency": 2}, "concurrency_key")])
def test_task_and_workflow_refuse_the_same_bad_options(tmp_path: Path, bad: dict[str, object],
                                                        word: str) -> None:
    """A workflow's options are checked like a task's (they were not, before the table)."""
    app = App(str(tmp_path / "s.db"))
    for decorator in (app.task, app.workflow):
        with pytest.raises(InvalidJob, match=word):
            decorator(**bad)  # type: ignore[operator]


def test_refusals_of_bad_values_are_invalidjob_not_bare_errors(tmp_path: Path) -> None:
    """A caller tells a refusal (InvalidJob, also a TypeError) from a bug by its type."""
    import datetime as dt

    from jobrun.workflows.waits import sleep

    app = App(str(tmp_path / "s.db"))
    with pytest.raises(InvalidValue, match="rate_limit"):
        app.task(rate_limit="abc")

    @app.task
    def t() -> None: ...

    with pytest.raises(InvalidValue, match="aware datetime"):
        t.options(run_at=dt.datetime(2030, 1, 1), allow_unknown=True).enqueue()
    with pytest.raises(InvalidValue, match=">= 0"):
        sleep(-1)


def test_a_jobs_file_names_the_line_of_a_value_the_option_refuses(tmp_path: Path) -> None:
    from jobrun.jobsfile import JobsFileError, load_calls

    f = tmp_path / "jobs.toml"
    f.write_text('[[job]]\ntask = "a:b"\n\n[[job]]\ntask = "a:b"\nkey = "' + "k" * 5000 + '"\n',
                 encoding="utf-8")
    with pytest.raises(JobsFileError) as exc:
        load_calls(str(f))
    assert (exc.value.line, exc.value.index) == (4, 1) and "key" in str(exc.value)
