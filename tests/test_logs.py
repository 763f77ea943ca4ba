"""One event is one log line, whatever a task name, argument or error message holds."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from jobrun.ops.logs import JsonFormatter, TextFormatter, escape

HOSTILE = ["a\nb", "a\r\nb", "a\tb", "a\x00b", "a\x1bb", "a\x7fb", "a\u2028b", "a\u2029b",
           "a\x85b", "a\x0bb", "a\x0cb", "a\x1cb", "a\x9bb"]


def record(msg: str, *args: object, fields: dict[str, object] | None = None,
           exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("boom\nFAKE 2026-01-01T00:00:00 INFO forged")
        except ValueError:
            info = sys.exc_info()
    rec = logging.LogRecord("jobrun.job", logging.INFO, __file__, 1, msg, args, info)
    if fields is not None:
        rec.jobrun = fields
    return rec


def lines(text: str) -> list[str]:
    """Every way a terminal, journald or a log shipper could split the text into lines."""
    return text.splitlines()


@pytest.mark.parametrize("evil", HOSTILE)
def test_text_is_one_line_whatever_the_message_and_fields(evil: str) -> None:
    rec = record("job %s failed: %s", evil, evil,
                 fields={"task": evil, "queue": evil, evil: 1, "outcome": "dead"})
    out = TextFormatter().format(rec)
    assert len(lines(out)) == 1, out
    assert all(ch not in out for ch in "\n\r\t\x00\x1b\x7f\u2028\u2029\x85\x0b\x0c\x1c\x9b")


def test_the_escapes_are_readable_and_a_field_cannot_be_forged() -> None:
    out = TextFormatter().format(record("job %s", "x\ny", fields={
        "task": "t queue=forged", "queue": "q", "trace_id": 'a"b', "empty": "",
        "path": "C:\\x\u2028"}))
    assert "job x\\ny " in out
    assert 'task="t queue=forged" queue=q' in out
    assert 'trace_id="a\\"b"' in out and 'empty=""' in out
    assert 'path="C:\\\\x\\u2028"' in out
    assert escape("plain text") == "plain text" and escape("é ü 日本") == "é ü 日本"
    assert escape("\x00\x1f\x7f\x85\u2028\u2029") == "\\x00\\x1f\\x7f\\x85\\u2028\\u2029"


def test_a_traceback_stays_on_the_line_of_its_event() -> None:
    out = TextFormatter().format(record("job failed", fields={"task": "t"}, exc=True))
    assert len(lines(out)) == 1, out
    assert "Traceback (most recent call last):\\n" in out and "FAKE" in out


@pytest.mark.parametrize("evil", HOSTILE)
def test_json_is_one_valid_object_per_line(evil: str) -> None:
    rec = record("job %s", evil, fields={"task": evil, evil: evil, "duration": float("nan")},
                 exc=True)
    out = JsonFormatter().format(rec)
    assert len(lines(out)) == 1, out
    obj = json.loads(out)
    assert obj["task"] == evil and obj["msg"] == f"job {evil}" and obj[evil] == evil
    assert obj["duration"] == "nan" and "FAKE" in obj["exc"]
