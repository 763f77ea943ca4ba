"""Log lines to stderr (journald keeps them): text for people, JSON for machines.

Job events carry a `jobrun` dict (job_id, task, queue, attempt, duration, outcome, trace_id)
that both formats print.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from typing import Any

_IN_MESSAGE = {"event", "error", "retry_in"}  # the text message says these already

# Every character that ends a line somewhere (str.splitlines, terminals, journald, log
# shippers) or drives a terminal: C0, DEL, C1 (U+0085 NEL among them), U+2028, U+2029.
_ESCAPES: dict[int, str] = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_ESCAPES.update({0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"})
_QUOTED = str.maketrans({"\\": "\\\\", '"': '\\"'})
_KEY = str.maketrans({" ": "_", "=": "_", '"': "_"})
_BARE_NOT = frozenset(' ="')  # printable, but would split or fake a logfmt field


def escape(text: str) -> str:
    """`text` with every line-breaking, control, invisible or bidi character (anything not
    printable: U+200B, U+202E) written as an escape, so a task name or error message holding
    one cannot forge a log line, drive the terminal or hide or reverse what is shown."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _ESCAPES.get(ord(c)) or
                   (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
                    if ord(c) < 0x10000 else f"\\U{ord(c):08x}") for c in text)


def shown(text: str) -> str:
    """Text from a job (an error, a traceback, a command's output) for a terminal: lines
    kept, every other control character escaped (an escape sequence in a job's output must
    not drive the operator's terminal)."""
    return "\n".join(escape(line).replace("\\t", "\t")
                     for line in text.split("\n"))


def _value(value: Any) -> str:
    """logfmt: bare if plain, else quoted with \\ and \" escaped (so `a queue=x` stays one
    field and the escapes read back unambiguously)."""
    text = value if isinstance(value, str) else str(value)
    if text and text.isprintable() and _BARE_NOT.isdisjoint(text):
        return text
    return '"' + escape(text.translate(_QUOTED)) + '"'


def _key(key: Any) -> str:
    text = key if isinstance(key, str) else str(key)
    return text if text.isidentifier() else escape(text.translate(_KEY))


class TextFormatter(logging.Formatter):
    """One event, one line: the message is escaped, fields are logfmt, a traceback is a
    quoted `exc=` field (journald would otherwise split it into unrelated entries)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {record.levelname:<7} " \
               f"{escape(record.getMessage())}"
        fields: dict[str, Any] | None = getattr(record, "jobrun", None)
        if fields:
            line += " " + " ".join(f"{_key(k)}={_value(v)}"
                                   for k, v in fields.items()
                                   if v is not None and k not in _IN_MESSAGE)
        if record.exc_info:
            line += " exc=" + _value(self.formatException(record.exc_info))
        if record.stack_info:
            line += " stack=" + _value(self.formatStack(record.stack_info))
        return line


def _finite(value: Any) -> Any:
    """NaN and infinities as strings: `NaN` is not JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: json.dumps escapes every control character and, ASCII
    only, U+2028/U+2029 too."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": record.created, "level": record.levelname.lower(),
                               "logger": record.name, "msg": record.getMessage()}
        fields = getattr(record, "jobrun", None)
        if fields:
            out.update((str(k), _finite(v)) for k, v in fields.items())
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(fmt: str = "text", level: str = "INFO") -> None:
    if fmt not in ("text", "json"):
        raise SystemExit(f"jobrun: --log-format must be text or json, not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("jobrun")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
