"""Cron maths: when does a trigger fire? Pure: no I/O, never reads the clock.

Every function takes time as an argument (aware datetimes; naive ones raise InvalidValue, a ValueError) and
returns aware UTC datetimes, so the scheduler, `jobrun cron ls` and tests all agree.

Triggers
    Schedule(expr, tz)  five cron fields (minute hour day-of-month month day-of-week) with
                        `*`, ranges `1-5`, steps `*/15`, lists `1,3`, names `MON`, `JAN`, plus
                        @hourly @daily @midnight @weekly @monthly @yearly @annually, read in
                        the IANA zone `tz` (default UTC).  Vixie rules: if neither day field
                        starts with `*`, a day matches either of them; cronsim's extensions `L`,
                        `LW`, `5L`, `MON#2` are accepted too.  Six fields (seconds) are refused.
    Every(seconds)      fires at k * seconds after the Unix epoch (UTC), k an integer, so every
                        process agrees on the due times; resolution is one microsecond.

Daylight-saving time.  Matching is done on local wall-clock time, then mapped to instants:
    * a matching local time that does not exist (spring forward) fires ONCE, at the first
      instant after the gap; several such times (`*/15` in the lost hour) merge into that one
      fire.  E.g. "30 2 * * *" in America/New_York on 2026-03-08 fires at 03:00 EDT (07:00Z).
      This holds for every schedule: nothing is silently dropped.
    * a matching local time that occurs twice (fall back) fires once, at its first occurrence
      (fold=0), if the minute and the hour fields are both fixed ("30 1 * * *", "0 1-3 * * *").
      If the minute OR the hour field starts with `*` ("0 * * * *", "*/15 1 * * *") the entry
      follows the real clock and fires in both occurrences, as in Vixie/Debian cron and
      cronsim.  So "0 * * * *" fires 23 times on a spring-forward day and 25 on a fall-back day.
Next-fire times strictly increase.  An expression that can never fire ("0 0 30 2 *") is
refused by parse_schedule; computing a next fire scans at most 50 years (a few ms).

cronsim (2.x) is used only for wall-clock matching on naive datetimes; the DST mapping is
ours because cronsim returns times before `after` when started inside a repeated hour and
skips, rather than delays, wildcard entries that fall in a spring-forward gap.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from jobrun.errors import InvalidJob, InvalidValue, JobrunError

if TYPE_CHECKING:  # cronsim and zoneinfo load with the first cron entry: a service without
    from zoneinfo import ZoneInfo  # cron holds neither (1.9 MB resident)

__all__ = [
    "Every",
    "Schedule",
    "ScheduleError",
    "Trigger",
    "due_between",
    "next_fires",
    "parse_duration",
    "parse_every",
    "parse_schedule",
]

UTC = UTC
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
            "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
            "@annually": "0 0 1 1 *"}
_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_MAX_EVERY = 100 * 366 * 86400.0  # beyond that next_after would leave datetime's range
_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
_PART = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|[wdhms])", re.ASCII | re.IGNORECASE)


class ScheduleError(JobrunError, ValueError):
    """A bad cron expression, zone or interval; the message names it and says why."""


@dataclass(frozen=True)
class _Compiled:
    fields: str      # the five cron fields cronsim reads
    zone: ZoneInfo
    wild: bool       # minute or hour starts with "*": follows the real clock on fall back


@functools.lru_cache(maxsize=1024)
def _compile(expr: str, tz: str) -> _Compiled:
    """Validate once (cached): Schedule objects are always valid, so next_after cannot fail late."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from cronsim import CronSim, CronSimError

    text = expr.strip()
    if not text:
        raise ScheduleError(f"bad cron expression {expr!r}: empty")
    if text.startswith("@"):
        if text.lower() not in _ALIASES:
            raise ScheduleError(f"bad cron expression {expr!r}: unknown alias, use one of "
                                + ", ".join(_ALIASES))
        text = _ALIASES[text.lower()]
    parts = text.split()
    if len(parts) != 5:
        raise ScheduleError(f"bad cron expression {expr!r}: {len(parts)} fields, expected 5 "
                            "(minute hour day-of-month month day-of-week)")
    for i, (name, part) in enumerate(zip(_FIELDS, parts)):
        try:  # one field at a time, the others "*", to say which field is bad
            CronSim(" ".join(p if j == i else "*" for j, p in enumerate(parts)),
                    datetime(2000, 1, 1))
        except CronSimError:
            raise ScheduleError(f"bad cron expression {expr!r}: bad {name} field {part!r}") from None
    fields = " ".join(parts)
    try:
        sim = CronSim(fields, datetime(2000, 1, 1))
    except CronSimError as exc:  # fields valid alone but not together (day 30 in February)
        raise ScheduleError(f"bad cron expression {expr!r}: {exc} (no such date)") from None
    # The Gregorian weekday/leap pattern repeats every 28 years in 1901-2099: 50 years suffice.
    if next(sim, None) is None:
        raise ScheduleError(f"bad cron expression {expr!r}: it never fires")
    try:  # "localtime" is the host's /etc/localtime: not an IANA name, and not portable
        zone = ZoneInfo(tz if tz != "localtime" else "")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"cron expression {expr!r}: unknown time zone {tz!r}") from None
    return _Compiled(fields, zone, parts[0].startswith("*") or parts[1].startswith("*"))


def _check_aware(dt: datetime, name: str = "after") -> None:
    if not isinstance(dt, datetime):
        raise InvalidJob(f"{name} must be a datetime, not {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise InvalidValue(f"{name} must be timezone-aware (got naive {dt.isoformat()})")


def _matches(fields: str, start: datetime) -> Iterator[datetime]:
    """Naive wall-clock matches strictly after `start` (whole minutes), for 50 years at most."""
    from cronsim import CronSim

    try:
        yield from CronSim(fields, start)
    except OverflowError:  # ran past year 9999
        return


def _fold_gap(local: datetime, zone: ZoneInfo) -> timedelta:
    """offset(fold=0) - offset(fold=1): > 0 in a repeated hour, < 0 in a gap (PEP 495), else 0."""
    off0 = local.replace(tzinfo=zone, fold=0).utcoffset()
    off1 = local.replace(tzinfo=zone, fold=1).utcoffset()
    assert off0 is not None and off1 is not None
    return off0 - off1


def _first_instant(local: datetime, zone: ZoneInfo) -> datetime:
    """The instant a wall-clock match fires: its first occurrence, or the end of its gap."""
    if _fold_gap(local, zone) >= timedelta(0):
        return local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    # In a gap fold=1 reads it with the new offset (before the jump), fold=0 with the old one
    # (after it): bisect between them, in whole seconds, for the transition instant.
    lo = int(local.replace(tzinfo=zone, fold=1).timestamp())
    hi = int(local.replace(tzinfo=zone, fold=0).timestamp())
    new = datetime.fromtimestamp(hi, zone).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == new:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


@dataclass(frozen=True)
class Schedule:
    """A cron expression read in an IANA zone; validated on construction."""

    expr: str
    tz: str = "UTC"

    def __post_init__(self) -> None:
        if not isinstance(self.expr, str):
            raise ScheduleError(f"cron expression must be a string, not {self.expr!r}")
        if not isinstance(self.tz, str):
            raise ScheduleError(f"time zone must be a string, not {self.tz!r}")
        _compile(self.expr, self.tz)

    def next_after(self, after: datetime) -> datetime:
        """The first fire strictly after `after`, in UTC."""
        nxt = self._next(after)
        if nxt is None:
            raise ScheduleError(f"cron expression {self.expr!r} does not fire within 50 years "
                                f"after {after.isoformat()} (nor before year 10000)")
        return nxt

    def _next(self, after: datetime) -> datetime | None:
        _check_aware(after)
        c = _compile(self.expr, self.tz)
        local = after.astimezone(c.zone).replace(tzinfo=None, fold=0)
        best: datetime | None = None
        # First occurrences (or gap ends) never decrease as wall time grows, so the first
        # match after the local time whose instant is past `after` is the earliest; matches
        # skipped here are first occurrences already past when `after` is in a repeated hour.
        for m in _matches(c.fields, local):
            t = _first_instant(m, c.zone)
            if t > after:
                best = t
                break
        gap = _fold_gap(local, c.zone)
        if c.wild and gap > timedelta(0):
            # `after` is inside a repeated hour: a second occurrence may come first.
            for m in _matches(c.fields, local - gap):
                if m >= local + gap:
                    break
                if _fold_gap(m, c.zone) > timedelta(0):
                    t = m.replace(tzinfo=c.zone, fold=1).astimezone(UTC)
                    if t > after:
                        if best is None or t < best:
                            best = t
                        break
        return best


@dataclass(frozen=True)
class Every:
    """A fixed interval aligned on the Unix epoch, so every process agrees on due times."""

    seconds: float

    def __post_init__(self) -> None:
        s = self.seconds
        if isinstance(s, bool) or not isinstance(s, (int, float)):
            raise ScheduleError(f"interval must be a number of seconds, not {s!r}")
        if not math.isfinite(s) or s <= 0 or s > _MAX_EVERY or round(s * 1_000_000) < 1:
            raise ScheduleError(f"bad interval {s!r} s: it must be > 0 (at least 1 µs) "
                                "and at most 100 years")

    def next_after(self, after: datetime) -> datetime:
        """The smallest k * seconds (from the epoch) strictly after `after`, in UTC."""
        _check_aware(after)
        period = round(self.seconds * 1_000_000)
        k = (after - _EPOCH) // _US // period + 1
        return _EPOCH + timedelta(microseconds=k * period)


Trigger = Schedule | Every


def parse_schedule(expr: str, tz: str = "UTC") -> Schedule:
    """A validated Schedule; raises ScheduleError naming the expression and the reason."""
    if isinstance(expr, str) and isinstance(tz, str):
        _compile(expr, tz)  # errors name the expression as written
        expr = " ".join(expr.split())
    return Schedule(expr, tz)


def parse_duration(text: str | float) -> float:
    """Seconds in "90", "0.5s", "30s", "5m", "1h30m", "1h 30m", "7d", "2w", "250ms"; >= 0.

    Numbers are seconds; units (w d h m s ms, any case: m is always minutes) go largest
    first, each at most once, so typos like "5m1h" or "5mm" are refused, not guessed.
    """
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ScheduleError(f"bad duration {text!r}: expected seconds or a string like '5m'")
    if not isinstance(text, str):
        try:
            seconds = float(text)
        except OverflowError:
            seconds = math.inf
        if not math.isfinite(seconds) or seconds < 0:
            raise ScheduleError(f"bad duration {text!r}: must be a finite number >= 0")
        return seconds
    s = text.strip()
    if _NUMBER.fullmatch(s):
        s += "s"
    total, pos, last = 0.0, 0, math.inf
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise ScheduleError(f"bad duration {text!r}: expected a number and a unit "
                                "(w, d, h, m, s, ms), e.g. '90', '30s', '1h30m'")
        size = _UNITS[m.group(2).lower()]
        if size >= last:
            raise ScheduleError(f"bad duration {text!r}: units must go largest first, once each")
        total, pos, last = total + float(m.group(1)) * size, m.end(), size
    if pos == 0:
        raise ScheduleError(f"bad duration {text!r}: empty")
    if not math.isfinite(total):
        raise ScheduleError(f"bad duration {text!r}: too large")
    return total


def parse_every(text: str | float) -> Every:
    """An Every from a duration ("30s", "5m", "1h30m", "90", "0.5s"); must be > 0."""
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ScheduleError(f"bad interval {text!r}: must be > 0")
    try:
        return Every(seconds)
    except ScheduleError as exc:
        raise ScheduleError(f"bad interval {text!r}: {exc}") from None


def _next_or_none(trigger: Trigger, after: datetime) -> datetime | None:
    return trigger._next(after) if isinstance(trigger, Schedule) else trigger.next_after(after)


def next_fires(trigger: Trigger, after: datetime, count: int) -> list[datetime]:
    """The next `count` fires after `after`, strictly increasing (fewer only if it stops firing)."""
    _check_aware(after)
    if count < 0:
        raise InvalidValue(f"count must be >= 0, not {count}")
    out: list[datetime] = []
    t = _next_or_none(trigger, after) if count else None
    while t is not None:
        out.append(t)
        t = _next_or_none(trigger, t) if len(out) < count else None
    return out


def due_between(trigger: Trigger, start: datetime, end: datetime,
                limit: int = 1000) -> list[datetime]:
    """Fires t with start < t <= end, the earliest `limit` of them (a long outage is bounded)."""
    _check_aware(start, "start")
    _check_aware(end, "end")
    if limit < 0:
        raise InvalidValue(f"limit must be >= 0, not {limit}")
    out: list[datetime] = []
    t = _next_or_none(trigger, start) if limit else None
    while t is not None and t <= end:
        out.append(t)
        t = _next_or_none(trigger, t) if len(out) < limit else None
    return out
