"""The one place that reads time. Everything else takes `now` as an argument."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from .errors import InvalidValue


def now() -> float:
    """Wall-clock Unix seconds (UTC): what the store records."""
    return time.time()


def timer() -> float:
    """For measuring how long something ran: the finest clock there is."""
    return time.perf_counter()


def monotonic() -> float:
    """For waiting and measuring: never jumps with the wall clock."""
    return time.monotonic()


def to_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def to_timestamp(dt: datetime) -> float:
    if dt.tzinfo is None:
        raise InvalidValue(f"run_at must be an aware datetime, got naive {dt.isoformat()}")
    return dt.timestamp()


#: 9999-12-31T23:59:59Z: the run_at of a job that waits to be woken (a workflow waiting for an
#: event or its children), and the end of the times a job may be given.
NEVER = 253402300799.0


def when(ts: float | None) -> str:
    """A run_at as people read it: ISO 8601, or "when woken" for NEVER."""
    return "when woken" if ts is not None and ts >= NEVER else iso(ts) or ""


def iso(ts: float | None) -> str | None:
    """ISO 8601 in UTC with a `Z`, or None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
