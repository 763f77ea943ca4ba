"""Log lines to stderr (journald keeps them): text for people, JSON for machines.

Job events carry a `jobrun` dict (job_id, task, queue, attempt, duration, outcome, trace_id)
that both formats print.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

_IN_MESSAGE = {"event", "error", "retry_in"}  # the text message says these already


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {record.levelname:<7} " \
               f"{record.getMessage()}"
        fields: dict[str, Any] | None = getattr(record, "jobrun", None)
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items()
                                   if v is not None and k not in _IN_MESSAGE)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": record.created, "level": record.levelname.lower(),
                               "logger": record.name, "msg": record.getMessage()}
        fields = getattr(record, "jobrun", None)
        if fields:
            out.update(fields)
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
