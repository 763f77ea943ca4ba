"""Tests of jobrun.cron: pure cron maths, real datetimes only (no clock, no mocks)."""

from __future__ import annotations

import itertools
import math
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from jobrun.cron import (
    Every,
    Schedule,
    ScheduleError,
    Trigger,
    due_between,
    next_fires,
    parse_duration,
    parse_every,
    parse_schedule,
)
from jobrun.errors import InvalidValue, JobrunError

UTC = UTC
NY, BERLIN = "America/New_York", "Europe/Berlin"
US = timedelta(microseconds=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def local_day(tz: str, day: date) -> tuple[datetime, datetime]:
    """[start, end) of a local calendar day, as UTC instants."""
    z = ZoneInfo(tz)
    start = datetime.combine(day, datetime.min.time(), z)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), z)
    return start.astimezone(UTC), end.astimezone(UTC)


def fires_on(expr: str, tz: str, day: date) -> list[datetime]:
    start, end = local_day(tz, day)
    return due_between(parse_schedule(expr, tz), start - US, end - US)


def increasing(ts: list[datetime]) -> bool:
    return all(a < b for a, b in itertools.pairwise(ts))


# --------------------------------------------------------------------------- DST, the brief's matrix

SPRING_NY, FALL_NY = date(2026, 3, 8), date(2026, 11, 1)
SPRING_BER, FALL_BER = date(2026, 3, 29), date(2026, 10, 25)

DAILY = [  # (tz, day, expr, exact UTC fires)
    (NY, SPRING_NY, "0 2 * * *", [utc(2026, 3, 8, 7, 0)]),     # 02:00 missing -> 03:00 EDT
    (NY, SPRING_NY, "30 2 * * *", [utc(2026, 3, 8, 7, 0)]),    # 02:30 missing -> 03:00 EDT
    (NY, FALL_NY, "0 2 * * *", [utc(2026, 11, 1, 7, 0)]),      # 02:00 EST, not repeated in NY
    (NY, FALL_NY, "30 2 * * *", [utc(2026, 11, 1, 7, 30)]),
    (NY, FALL_NY, "30 1 * * *", [utc(2026, 11, 1, 5, 30)]),    # repeated: first (EDT) only
    (BERLIN, SPRING_BER, "0 2 * * *", [utc(2026, 3, 29, 1, 0)]),   # -> 03:00 CEST
    (BERLIN, SPRING_BER, "30 2 * * *", [utc(2026, 3, 29, 1, 0)]),  # -> 03:00 CEST
    (BERLIN, FALL_BER, "0 2 * * *", [utc(2026, 10, 25, 0, 0)]),    # 02:00 CEST, not CET
    (BERLIN, FALL_BER, "30 2 * * *", [utc(2026, 10, 25, 0, 30)]),  # 02:30 CEST, not CET
]


@pytest.mark.parametrize("tz,day,expr,expected", DAILY)
def test_daily_entries_fire_once_on_dst_days(tz: str, day: date, expr: str,
                                             expected: list[datetime]) -> None:
    assert fires_on(expr, tz, day) == expected


@pytest.mark.parametrize("tz,day,hours", [
    (NY, SPRING_NY, 23), (NY, FALL_NY, 25), (BERLIN, SPRING_BER, 23), (BERLIN, FALL_BER, 25),
    (NY, date(2026, 3, 9), 24), (BERLIN, date(2026, 10, 26), 24),
])
@pytest.mark.parametrize("expr,step", [("0 * * * *", 60), ("*/15 * * * *", 15)])
def test_hourly_and_quarter_hourly_follow_real_time(tz: str, day: date, hours: int, expr: str,
                                                    step: int) -> None:
    """One fire per real hour (quarter): 23/25 hours, i.e. 23/92 and 25/100 fires."""
    start, _ = local_day(tz, day)
    expected = [start + timedelta(minutes=step * k) for k in range(hours * 60 // step)]
    got = fires_on(expr, tz, day)
    assert got == expected
    assert increasing(got)


def test_spring_forward_exact_instants_ny_hourly() -> None:
    got = fires_on("0 * * * *", NY, SPRING_NY)
    assert got[:3] == [utc(2026, 3, 8, 5), utc(2026, 3, 8, 6), utc(2026, 3, 8, 7)]  # 0,1 EST, 3 EDT
    assert got[-1] == utc(2026, 3, 9, 3)  # 23:00 EDT


def test_fall_back_hourly_fires_in_both_repeated_hours() -> None:
    got = fires_on("0 * * * *", BERLIN, FALL_BER)
    assert utc(2026, 10, 25, 0) in got and utc(2026, 10, 25, 1) in got  # 02:00 CEST and CET
    got = fires_on("0 * * * *", NY, FALL_NY)
    assert utc(2026, 11, 1, 5) in got and utc(2026, 11, 1, 6) in got    # 01:00 EDT and EST


# --------------------------------------------------------------------------- DST, the finer rules

def test_wildcard_rule_is_minute_or_hour_starting_with_star() -> None:
    """As cronsim/Debian cron: minute OR hour field starting with '*' => real clock on fall back."""
    got = fires_on("*/15 1 * * *", NY, FALL_NY)       # fixed hour, wildcard minute: both 1 a.m.s
    assert got == [utc(2026, 11, 1, 5) + timedelta(minutes=15 * k) for k in range(8)]
    got = fires_on("0 */2 * * *", BERLIN, FALL_BER)   # step hour: 02:00 CEST and 02:00 CET
    assert len(got) == 13 and utc(2026, 10, 25, 0) in got and utc(2026, 10, 25, 1) in got
    got = fires_on("0 1-3 * * *", NY, FALL_NY)        # range hour, fixed minute: first 1 a.m. only
    assert got == [utc(2026, 11, 1, 5), utc(2026, 11, 1, 7), utc(2026, 11, 1, 8)]
    got = fires_on("0 0-23 * * *", NY, FALL_NY)       # same hours as "0 * * * *", but "fixed"
    assert len(got) == 24 and utc(2026, 11, 1, 6) not in got


def test_missing_times_are_delayed_not_dropped_even_for_wildcards() -> None:
    """Unlike cronsim/Vixie (which skip wildcard entries in the gap): one fire at gap end."""
    assert fires_on("*/15 2 * * *", NY, SPRING_NY) == [utc(2026, 3, 8, 7)]   # cronsim: none
    got = fires_on("30 * * * *", NY, SPRING_NY)                              # cronsim: 23
    assert len(got) == 24 and utc(2026, 3, 8, 6, 30) in got and utc(2026, 3, 8, 7) in got
    assert utc(2026, 3, 8, 7, 30) in got
    assert len(fires_on("0 */2 * * *", BERLIN, SPRING_BER)) == 12            # cronsim: 11


def test_after_inside_repeated_hour_never_goes_back() -> None:
    """cronsim returns 05:45Z for this (before `after`); we return the next day's 01:45 EST."""
    s = parse_schedule("45 1 * * *", NY)
    after = utc(2026, 11, 1, 6, 10)                   # 01:10 EST, second 1 a.m.
    assert next(CronSim("45 1 * * *", after.astimezone(ZoneInfo(NY)))) < after  # the cronsim bug
    assert s.next_after(after) == utc(2026, 11, 2, 6, 45)


def test_midnight_in_a_gap_fires_at_gap_end() -> None:
    """America/Havana springs forward at midnight: a daily midnight entry runs at 01:00 CDT."""
    got = fires_on("0 0 * * *", "America/Havana", date(2026, 3, 8))
    assert got == [utc(2026, 3, 8, 5)]
    assert datetime(2026, 3, 8, 1, tzinfo=ZoneInfo("America/Havana")).astimezone(UTC) == got[0]


def test_whole_missing_day_samoa_2011() -> None:
    """Pacific/Apia skipped 2011-12-30: its noon entry runs once, at the start of the 31st."""
    s = parse_schedule("0 12 * * *", "Pacific/Apia")
    got = next_fires(s, utc(2011, 12, 29, 12), 3)
    z = ZoneInfo("Pacific/Apia")
    assert [t.astimezone(z).replace(tzinfo=None) for t in got] == [
        datetime(2011, 12, 29, 12), datetime(2011, 12, 31, 0), datetime(2011, 12, 31, 12)]


def test_half_hour_dst_lord_howe() -> None:
    """Australia/Lord_Howe moves 30 minutes: 02:15 does not exist on 2026-10-04, fires at 02:30."""
    z = ZoneInfo("Australia/Lord_Howe")
    got = fires_on("15 2 * * *", "Australia/Lord_Howe", date(2026, 10, 4))
    assert [t.astimezone(z).strftime("%H:%M") for t in got] == ["02:30"]
    assert len(fires_on("0 * * * *", "Australia/Lord_Howe", date(2026, 10, 4))) == 24


# --------------------------------------------------------------------------- brute-force oracle

def _transitions(tz: str, year: int) -> list[datetime]:
    z, out = ZoneInfo(tz), []
    t = utc(year, 1, 1)
    while t.year == year:
        if t.astimezone(z).utcoffset() != (t + timedelta(hours=1)).astimezone(z).utcoffset():
            out.append(t)
        t += timedelta(hours=1)
    return out


ORACLE_ZONES = [NY, BERLIN, "Australia/Lord_Howe", "America/Santiago", "Europe/Dublin",
                "America/Havana", "Australia/Sydney"]
WINDOWS = [(tz, t) for tz in ORACLE_ZONES for t in _transitions(tz, 2026)]
ORACLE_EXPRS = ["0 2 * * *", "30 2 * * *", "30 1 * * *", "0 * * * *", "*/15 * * * *",
                "30 * * * *", "*/15 2 * * *", "*/15 1 * * *", "0 */2 * * *", "0 1-3 * * *",
                "* * * * *", "*/7 1-3 * * *", "59 * * * *", "0 0 * * *", "*/20 0 * * *",
                "5,35 23,0,1,2 * * *", "45 23 * * *", "10 0-3/2 * * *"]


def brute_force(expr: str, tz: str, lo: datetime, hi: datetime) -> list[datetime]:
    """The fire set by definition, scanning every minute of [lo, hi]."""
    z = ZoneInfo(tz)
    parts = expr.split()
    wild = parts[0].startswith("*") or parts[1].startswith("*")
    naive_lo = lo.astimezone(z).replace(tzinfo=None) - timedelta(hours=3)
    naive_hi = hi.astimezone(z).replace(tzinfo=None) + timedelta(hours=3)
    matches: set[datetime] = set()
    for m in CronSim(expr, naive_lo):
        if m > naive_hi:
            break
        matches.add(m)
    fires, u, before = [], lo, (lo - timedelta(minutes=1)).astimezone(z).utcoffset()
    while u <= hi:
        loc = u.astimezone(z)
        jump, before = loc.utcoffset() - before, loc.utcoffset()  # type: ignore[operator]
        wall = loc.replace(tzinfo=None)
        gap = [wall - jump + timedelta(minutes=k) for k in range(int(jump.total_seconds()) // 60)]
        if (wall in matches and (wild or loc.fold == 0)) or any(g in matches for g in gap):
            fires.append(u)
        u += timedelta(minutes=1)
    return fires


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(window=st.sampled_from(WINDOWS), expr=st.sampled_from(ORACLE_EXPRS),
       offset_us=st.integers(0, 36 * 3600 * 10**6), snap=st.booleans())
def test_next_after_matches_brute_force(window: tuple[str, datetime], expr: str, offset_us: int,
                                        snap: bool) -> None:
    tz, transition = window
    lo, hi = transition - timedelta(hours=30), transition + timedelta(hours=36)
    fires = brute_force(expr, tz, lo, hi)
    after = lo + timedelta(microseconds=offset_us)
    if snap:  # exactly on a fire, the case where "strictly after" matters
        after = min(fires, key=lambda f: abs(f - after), default=after)
    later = [f for f in fires if f > after]
    assume(later and after >= lo + timedelta(hours=3))
    assert parse_schedule(expr, tz).next_after(after) == later[0]


# --------------------------------------------------------------------------- strict increase

@pytest.mark.parametrize("tz", ["UTC", NY, BERLIN, "Australia/Lord_Howe", "America/Santiago"])
@pytest.mark.parametrize("expr", ["0 2 * * *", "30 2 * * *", "*/15 * * * *", "0 * * * *",
                                  "30 1 * * *", "0 0 29 2 *", "@weekly", "0 */2 * * MON-FRI"])
def test_next_fires_strictly_increase_for_two_years(tz: str, expr: str) -> None:
    count = 3000 if expr.startswith(("*", "0 *")) else 800
    got = next_fires(parse_schedule(expr, tz), utc(2026, 1, 1), count)
    assert len(got) == count and increasing(got) and got[0] > utc(2026, 1, 1)
    assert all(t.tzinfo is UTC for t in got)


# --------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("expr,after,first", [
    ("0 9 * * MON-FRI", utc(2026, 1, 2, 10), utc(2026, 1, 5, 9)),      # Fri 10:00 -> Mon
    ("0 9 * * mon,wed", utc(2026, 1, 1), utc(2026, 1, 5, 9)),          # names, any case
    ("0 0 1 JAN,jul *", utc(2026, 1, 2), utc(2026, 7, 1)),
    ("0 0 * * 7", utc(2026, 1, 1), utc(2026, 1, 4)),                   # 7 is Sunday too
    ("*/20 1-3/2 * * *", utc(2026, 1, 1, 1, 40), utc(2026, 1, 1, 3)),  # range with a step
    ("  5   4  *  *  * ", utc(2026, 1, 1), utc(2026, 1, 1, 4, 5)),    # spaces and tabs
    ("@hourly", utc(2026, 1, 1, 0, 0, 1), utc(2026, 1, 1, 1)),
    ("@daily", utc(2026, 1, 1), utc(2026, 1, 2)),
    ("@midnight", utc(2026, 1, 1), utc(2026, 1, 2)),
    ("@weekly", utc(2026, 1, 1), utc(2026, 1, 4)),                     # Sunday
    ("@monthly", utc(2026, 1, 1), utc(2026, 2, 1)),
    ("@yearly", utc(2026, 1, 1), utc(2027, 1, 1)),
    ("@ANNUALLY", utc(2026, 1, 1), utc(2027, 1, 1)),
    ("0 0 29 2 *", utc(2026, 1, 1), utc(2028, 2, 29)),                 # leap day: accepted
    ("0 0 30 2 MON", utc(2026, 1, 1), utc(2026, 2, 2)),                # Vixie: day OR weekday
    ("0 0 L * *", utc(2026, 2, 1), utc(2026, 2, 28)),                  # cronsim extension
])
def test_valid_expressions(expr: str, after: datetime, first: datetime) -> None:
    assert parse_schedule(expr).next_after(after) == first


@pytest.mark.parametrize("expr,reason", [
    ("", "empty"), ("   ", "empty"), ("* * * *", "4 fields"), ("0 * * * * *", "6 fields"),
    ("60 * * * *", "minute"), ("* 24 * * *", "hour"), ("0 0 0 * *", "day-of-month"),
    ("0 0 32 * *", "day-of-month"), ("0 0 * 13 *", "month"), ("0 0 * * 8", "day-of-week"),
    ("*/0 * * * *", "minute"), ("5-1 * * * *", "minute"), ("0 0 * * FUNDAY", "day-of-week"),
    ("a b c d e", "minute"), ("0 0 30 2 *", "no such date"), ("0 0 31 4,6,9,11 *", "no such date"),
    ("0 0 */31 * MON#5", "never fires"), ("@reboot", "alias"), ("@every 5m", "alias"),
    ("0 0 ? * *", "day-of-month"), ("1,,2 * * * *", "minute"), ("٣ * * * *", "minute"),
])
def test_invalid_expressions(expr: str, reason: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_schedule(expr)
    assert reason in str(info.value) and repr(expr) in str(info.value)


def test_schedule_error_types_and_zone_errors() -> None:
    assert issubclass(ScheduleError, ValueError) and issubclass(ScheduleError, JobrunError)
    for bad in ["Mars/Olympus", "", "../../etc/passwd", "America", "utc+2", "localtime", "\x00"]:
        with pytest.raises(ScheduleError, match="time zone"):
            parse_schedule("0 2 * * *", bad)
    with pytest.raises(ScheduleError):
        Schedule("0 2 30 2 *")                      # direct construction validates too
    with pytest.raises(ScheduleError):
        Schedule(42)  # type: ignore[arg-type]
    assert parse_schedule("0  2 * * *", BERLIN) == Schedule("0 2 * * *", BERLIN)
    assert Schedule("0 2 * * *").tz == "UTC"


HOSTILE = st.text(alphabet="0123456789*/-,# LW?@MONTUEFRISATJANFEBDEChourlydaily\t", max_size=40)


@settings(max_examples=400, deadline=None)
@given(expr=HOSTILE | st.text(max_size=30))
def test_random_strings_are_rejected_or_fast(expr: str) -> None:
    try:
        s = parse_schedule(expr, NY)
    except ScheduleError:
        return
    t0 = time.perf_counter()
    first = s.next_after(utc(2026, 3, 8, 6, 59, 59))
    assert time.perf_counter() - t0 < 0.1     # generous here; the strict bound is tested below
    assert first > utc(2026, 3, 8, 6, 59, 59)


FIELD = st.one_of(st.just("*"), st.integers(0, 59).map(str),
                  st.tuples(st.integers(0, 20), st.integers(1, 30)).map(lambda t: f"{t[0]}/{t[1]}"),
                  st.tuples(st.integers(0, 5), st.integers(5, 11)).map(lambda t: f"{t[0]}-{t[1]}"))


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(FIELD, min_size=5, max_size=5), tz=st.sampled_from(["UTC", NY, BERLIN]),
       after_us=st.integers(0, 40 * 365 * 86400 * 10**6))
def test_random_fields_next_is_fast_and_increasing(parts: list[str], tz: str,
                                                  after_us: int) -> None:
    try:
        s = parse_schedule(" ".join(parts), tz)
    except ScheduleError:
        return
    after = utc(2000, 1, 1) + timedelta(microseconds=after_us)
    t0 = time.perf_counter()
    got = next_fires(s, after, 3)
    assert time.perf_counter() - t0 < 0.1
    assert got and got[0] > after and increasing(got)


@pytest.mark.parametrize("expr", ["0 0 * 2 MON#5", "0 0 29 2 */7", "59 23 31 12 */7",
                                  "0 0 29 2 *", "* * * * *", "*/15 1 * * *"])
def test_next_fire_under_10ms(expr: str) -> None:
    s = parse_schedule(expr, NY)
    after = utc(2026, 11, 1, 5, 30)  # inside the repeated hour: the slowest path
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        s.next_after(after)
        best = min(best, time.perf_counter() - t0)
    assert best < 0.010


# --------------------------------------------------------------------------- Every and durations

@pytest.mark.parametrize("text,seconds", [
    ("30s", 30), ("5m", 300), ("1h", 3600), ("1d", 86400), ("1h30m", 5400), ("1h 30m", 5400),
    ("90", 90), ("0.5s", 0.5), ("1.5h", 5400), ("2w", 1209600), ("250ms", 0.25), (" 7d ", 604800),
    ("1H30M", 5400), ("1d2h3m4s", 93784), (45, 45), (2.5, 2.5),
])
def test_parse_every_and_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_every(text) == Every(seconds)


@pytest.mark.parametrize("text", ["", " ", "0", "0s", "-5m", "+5m", "5x", "m", "5m1h", "5mm",
                                  "1h1h", "1e3", "inf", "nan", "1_000", "5 minutes", "1.s", ".5s",
                                  "٣s", True, None, -1, float("nan"), float("inf")])
def test_parse_every_rejects(text: object) -> None:
    with pytest.raises(ScheduleError):
        parse_every(text)  # type: ignore[arg-type]


def test_parse_duration_allows_zero_but_not_negative_or_huge() -> None:
    assert parse_duration("0s") == 0 and parse_duration(0) == 0
    for bad in [-1, "9" * 400, 10**400, "9" * 400 + "d"]:
        with pytest.raises(ScheduleError):
            parse_duration(bad)  # type: ignore[arg-type]


def test_every_validates() -> None:
    for bad in [0, -1, float("nan"), float("inf"), 1e-9, 1e12]:
        with pytest.raises(ScheduleError):
            Every(bad)


def test_every_is_epoch_aligned_and_strict() -> None:
    e = Every(300)
    assert e.next_after(utc(2026, 1, 1, 0, 2, 17)) == utc(2026, 1, 1, 0, 5)
    assert e.next_after(utc(2026, 1, 1, 0, 5)) == utc(2026, 1, 1, 0, 10)  # strictly after
    assert e.next_after(utc(2026, 1, 1, 0, 5) - US) == utc(2026, 1, 1, 0, 5)
    berlin = datetime(2026, 1, 1, 1, 2, tzinfo=ZoneInfo(BERLIN))          # any aware zone in
    assert e.next_after(berlin) == utc(2026, 1, 1, 0, 5)
    assert e.next_after(berlin).tzinfo is UTC
    assert Every(7).next_after(utc(1970, 1, 1)) == utc(1970, 1, 1, 0, 0, 7)
    assert parse_every("0.5s").next_after(utc(2026, 1, 1, 0, 0, 1, 250000)) == \
        utc(2026, 1, 1, 0, 0, 1, 500000)
    assert next_fires(Every(3600), utc(2026, 3, 8, 5, 30), 3) == [
        utc(2026, 3, 8, 6), utc(2026, 3, 8, 7), utc(2026, 3, 8, 8)]


@given(seconds=st.integers(1, 10**7) | st.sampled_from([0.5, 0.25, 1.5, 0.001]),
       after_us=st.integers(-10**16, 10**17))
def test_every_property(seconds: float, after_us: int) -> None:
    after = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=after_us)
    t = Every(seconds).next_after(after)
    k = (t - utc(1970, 1, 1)) / timedelta(seconds=seconds)
    assert k == int(k) and t > after and t - timedelta(seconds=seconds) <= after


# --------------------------------------------------------------------------- next_fires, due_between

def test_naive_datetimes_raise_value_error() -> None:
    naive = datetime(2026, 1, 1)
    triggers: list[Trigger] = [parse_schedule("0 * * * *"), Every(60)]
    for trig in triggers:
        with pytest.raises(ValueError, match="timezone-aware") as raised:
            trig.next_after(naive)
        assert isinstance(raised.value, InvalidValue)  # a refusal, told apart from a bug
        with pytest.raises(ValueError):
            next_fires(trig, naive, 3)
        with pytest.raises(ValueError):
            due_between(trig, naive, utc(2026, 1, 2))
        with pytest.raises(ValueError):
            due_between(trig, utc(2026, 1, 1), naive)


def test_due_between_big_gap_is_bounded() -> None:
    start, end = utc(2025, 1, 1), utc(2026, 1, 1)        # a year down
    triggers: list[Trigger] = [parse_schedule("* * * * *", BERLIN), Every(1)]
    for trig in triggers:
        got = due_between(trig, start, end)
        assert len(got) == 1000 and increasing(got) and got[0] > start
        assert len(due_between(trig, start, end, limit=5)) == 5
        assert due_between(trig, start, end, limit=0) == []


def test_due_between_bounds_are_open_closed() -> None:
    s = parse_schedule("0 * * * *")
    assert due_between(s, utc(2026, 1, 1, 1), utc(2026, 1, 1, 3)) == [
        utc(2026, 1, 1, 2), utc(2026, 1, 1, 3)]
    assert due_between(s, utc(2026, 1, 1, 3), utc(2026, 1, 1, 1)) == []
    assert due_between(s, utc(2026, 1, 1, 1), utc(2026, 1, 1, 1)) == []
    with pytest.raises(ValueError):
        due_between(s, utc(2026, 1, 1), utc(2026, 1, 2), limit=-1)


def test_next_fires_counts() -> None:
    s = parse_schedule("0 2 * * *", BERLIN)
    assert next_fires(s, utc(2026, 1, 1), 0) == []
    assert next_fires(s, utc(2026, 1, 1), 2) == [utc(2026, 1, 1, 1), utc(2026, 1, 2, 1)]
    with pytest.raises(ValueError):
        next_fires(s, utc(2026, 1, 1), -1)


def test_schedule_past_its_horizon() -> None:
    """Sunday Feb 29 is 40 years apart across 2100 (2088, 2128): still found. Past year 9999
    there is nothing: next_after raises ScheduleError, next_fires/due_between return fewer."""
    s = parse_schedule("0 0 29 2 */7", "UTC")
    assert s.next_after(utc(2089, 1, 1)) == utc(2128, 2, 29)
    assert next_fires(s, utc(2060, 1, 1), 3) == [utc(2060, 2, 29), utc(2088, 2, 29),
                                                  utc(2128, 2, 29)]
    daily = parse_schedule("0 0 29 2 *", "UTC")
    with pytest.raises(ScheduleError, match="50 years"):
        daily.next_after(utc(9997, 1, 1))
    assert next_fires(daily, utc(9990, 1, 1), 5) == [utc(9992, 2, 29), utc(9996, 2, 29)]
    assert due_between(daily, utc(9995, 1, 1), utc(9999, 12, 31)) == [utc(9996, 2, 29)]
