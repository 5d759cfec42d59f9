"""DateTrigger, IntervalTrigger, the friendly constructors, describe() and
time zone handling."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from pineapple.jobs.schedule import (
    CronTrigger,
    DateTrigger,
    IntervalTrigger,
    ScheduleError,
    _base,
    custom,
    daily,
    every,
    hourly,
    local_timezone,
    monthly,
    once,
    parse_time_of_day,
    resolve_timezone,
    weekly,
)
from pineapple.jobs.schedule.zones import named_zone

UTC = timezone.utc
BERLIN = named_zone("Europe/Berlin")


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


def fire_times(trigger, now: datetime, count: int) -> list[datetime]:
    times, previous = [], None
    for _ in range(count):
        previous = trigger.next_fire_time(previous, now)
        if previous is None:
            break
        times.append(previous.astimezone(UTC))
        now = previous
    return times


# ---------------------------------------------------------------------------
# DateTrigger / once


def test_date_trigger_fires_once():
    trigger = DateTrigger(utc(2025, 6, 1, 9))
    assert trigger.next_fire_time(None, utc(2025, 6, 1, 8)) == utc(2025, 6, 1, 9)
    assert trigger.next_fire_time(utc(2025, 6, 1, 9), utc(2025, 6, 1, 9)) is None


def test_date_trigger_in_the_past_is_finished():
    trigger = DateTrigger(utc(2025, 6, 1, 9))
    assert trigger.next_fire_time(None, utc(2025, 6, 1, 9)) is None
    assert trigger.next_fire_time(None, utc(2025, 6, 2)) is None


def test_once_reads_naive_times_in_the_zone():
    trigger = once("2025-06-01T09:00", timezone="Europe/Berlin")
    assert trigger.run_date.astimezone(UTC) == utc(2025, 6, 1, 7)
    assert once(datetime(2025, 6, 1, 9), timezone="Europe/Berlin") == trigger


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-06-01T09:00Z", utc(2025, 6, 1, 9)),
        ("2025-06-01T09:00:00+02:00", utc(2025, 6, 1, 7)),
        ("2025-06-01 09:00", utc(2025, 6, 1, 9)),
        ("2025-06-01", utc(2025, 6, 1)),
    ],
)
def test_once_iso_forms(text, expected):
    assert once(text, timezone="UTC").run_date == expected


def test_once_naive_time_in_dst_gap_and_overlap():
    gap = once("2025-03-30T02:30", timezone="Europe/Berlin").run_date
    assert (gap.astimezone(UTC), gap.strftime("%H:%M %Z")) == (utc(2025, 3, 30, 1), "03:00 CEST")
    overlap = once("2025-10-26T02:30", timezone="Europe/Berlin").run_date
    assert overlap.astimezone(UTC) == utc(2025, 10, 26, 0, 30)  # first occurrence


def test_once_rejects_bad_dates():
    with pytest.raises(ScheduleError) as caught:
        once("2025-13-01T09:00")
    assert str(caught.value) == (
        "run_date: '2025-13-01T09:00' is not an ISO date-time like 2025-06-01T09:00"
    )
    with pytest.raises(ScheduleError, match=r"^run_date: 5 is not a date-time$"):
        once(5)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# IntervalTrigger / every


def test_interval_counts_from_start_date():
    trigger = IntervalTrigger(minutes=30, start_date=utc(2025, 6, 1, 10))
    assert trigger.next_fire_time(None, utc(2025, 6, 1, 9)) == utc(2025, 6, 1, 10)
    assert trigger.next_fire_time(None, utc(2025, 6, 1, 10, 10)) == utc(2025, 6, 1, 10, 30)
    assert trigger.next_fire_time(None, utc(2025, 6, 1, 10, 30)) == utc(2025, 6, 1, 11)


def test_interval_skips_missed_runs():
    trigger = IntervalTrigger(minutes=30, start_date=utc(2025, 6, 1, 10))
    # daemon was down from 10:30 to 15:07: next run is the next slot, not 11:00
    assert trigger.next_fire_time(utc(2025, 6, 1, 10, 30), utc(2025, 6, 1, 15, 7)) == utc(
        2025, 6, 1, 15, 30
    )


def test_interval_previous_later_than_now():
    trigger = IntervalTrigger(hours=1, start_date=utc(2025, 6, 1))
    assert trigger.next_fire_time(utc(2025, 6, 1, 5), utc(2025, 6, 1, 2, 30)) == utc(2025, 6, 1, 6)


def test_interval_end_date_is_inclusive():
    trigger = IntervalTrigger(hours=1, start_date=utc(2025, 6, 1), end_date=utc(2025, 6, 1, 3))
    assert fire_times(trigger, utc(2025, 5, 31), 10) == [
        utc(2025, 6, 1, 0),
        utc(2025, 6, 1, 1),
        utc(2025, 6, 1, 2),
        utc(2025, 6, 1, 3),
    ]


def test_interval_units_add_up():
    trigger = IntervalTrigger(1, 1, 1, 1, 1, start_date=utc(2025, 6, 1))
    assert trigger.interval == timedelta(weeks=1, days=1, hours=1, minutes=1, seconds=1)


def test_interval_default_start_is_one_interval_after_creation():
    trigger = every("30m", created_at=utc(2025, 6, 1, 10, 0, 5))
    assert trigger.start_date == utc(2025, 6, 1, 10, 30, 5)
    assert trigger.next_fire_time(None, utc(2025, 6, 1, 10, 0, 5)) == utc(2025, 6, 1, 10, 30, 5)


def test_interval_default_start_uses_the_clock_when_not_given():
    before = datetime.now(UTC)
    trigger = every(60)
    assert (
        before + timedelta(seconds=60)
        <= trigger.start_date
        <= datetime.now(UTC) + timedelta(seconds=60)
    )


def test_interval_is_elapsed_time_across_spring_forward():
    trigger = IntervalTrigger(hours=1, start_date="2025-03-30T00:00", timezone="Europe/Berlin")
    times = fire_times(trigger, utc(2025, 3, 29, 22), 4)
    assert times == [
        utc(2025, 3, 29, 23),
        utc(2025, 3, 30, 0),
        utc(2025, 3, 30, 1),
        utc(2025, 3, 30, 2),
    ]
    local = [moment.astimezone(BERLIN).strftime("%H:%M %Z") for moment in times]
    assert local == ["00:00 CET", "01:00 CET", "03:00 CEST", "04:00 CEST"]


def test_interval_is_elapsed_time_across_fall_back():
    trigger = IntervalTrigger(hours=1, start_date="2025-10-26T01:00", timezone="Europe/Berlin")
    fired = []
    previous, now = None, utc(2025, 10, 25, 22)
    for _ in range(4):
        previous = trigger.next_fire_time(previous, now)
        fired.append(previous)
        now = previous
    assert [moment.astimezone(UTC) for moment in fired] == [
        utc(2025, 10, 25, 23),
        utc(2025, 10, 26, 0),
        utc(2025, 10, 26, 1),
        utc(2025, 10, 26, 2),
    ]
    # results carry the trigger zone: 02:00 happens twice, fold tells them apart
    assert [(m.strftime("%H:%M %Z"), m.fold) for m in fired] == [
        ("01:00 CEST", 0),
        ("02:00 CEST", 0),
        ("02:00 CET", 1),
        ("03:00 CET", 0),
    ]


def test_daily_interval_keeps_24h_so_wall_time_shifts_with_dst():
    trigger = every("1d", start_date="2025-03-29T09:00", timezone="Europe/Berlin")
    second = trigger.next_fire_time(utc(2025, 3, 29, 8), utc(2025, 3, 29, 8))
    assert second.astimezone(BERLIN).strftime("%H:%M %Z") == "10:00 CEST"


def test_interval_jitter_is_deterministic_and_keeps_the_grid():
    start = utc(2025, 6, 1, 10)
    first = IntervalTrigger(minutes=10, start_date=start, jitter=30, rng=random.Random(3))
    twin = IntervalTrigger(minutes=10, start_date=start, jitter=30, rng=random.Random(3))
    times = fire_times(first, utc(2025, 6, 1, 9), 5)
    assert times == fire_times(twin, utc(2025, 6, 1, 9), 5)
    for index, moment in enumerate(times):
        slot = start + index * timedelta(minutes=10)
        assert slot <= moment <= slot + timedelta(seconds=30)
    assert (
        len({moment - start - index * timedelta(minutes=10) for index, moment in enumerate(times)})
        > 1
    )


def test_interval_past_year_9999_is_finished():
    trigger = IntervalTrigger(weeks=52, start_date=utc(2025, 1, 1))
    assert trigger.next_fire_time(None, datetime(9999, 12, 1, tzinfo=UTC)) is None


def test_interval_zero_jitter_means_none():
    assert IntervalTrigger(minutes=1, start_date=utc(2025, 1, 1), jitter=0).jitter is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "interval: the interval must be greater than zero"),
        ({"minutes": 0}, "interval: the interval must be greater than zero"),
        ({"minutes": -30}, "interval: minutes -30 must not be negative"),
        ({"hours": "2"}, "interval: hours must be a number, got '2'"),
        ({"seconds": True}, "interval: seconds must be a number, got True"),
        ({"weeks": 1e12}, "interval: the interval is too long"),
        ({"minutes": float("inf")}, "interval: the interval is too long"),
        ({"minutes": float("nan")}, "interval: minutes must be a number, got nan"),
        (
            {"minutes": 5, "start_date": "2025-06-02T00:00Z", "end_date": "2025-06-01T00:00Z"},
            "end_date: 2025-06-01T00:00:00+00:00 is before start_date 2025-06-02T00:00:00+00:00",
        ),
        ({"minutes": 5, "jitter": "-3m"}, "jitter: '-3m' must be positive"),
    ],
)
def test_interval_validation_messages(kwargs, message):
    with pytest.raises(ScheduleError) as caught:
        IntervalTrigger(**kwargs)
    assert str(caught.value) == message


def test_every_accepts_durations_numbers_and_timedeltas():
    start = utc(2025, 1, 1)
    assert every("2h32m", start_date=start).interval == timedelta(hours=2, minutes=32)
    assert every(90, start_date=start).interval == timedelta(seconds=90)
    assert every(timedelta(microseconds=1500), start_date=start).interval == timedelta(
        microseconds=1500
    )
    with pytest.raises(ScheduleError, match=r"^every: '5x' is not a duration"):
        every("5x")


# ---------------------------------------------------------------------------
# Friendly cron constructors


def test_hourly():
    trigger = hourly(15, timezone="UTC")
    assert fire_times(trigger, utc(2025, 6, 1, 10, 20), 2) == [
        utc(2025, 6, 1, 11, 15),
        utc(2025, 6, 1, 12, 15),
    ]
    assert hourly(timezone="UTC").next_fire_time(None, utc(2025, 6, 1, 10, 20)) == utc(
        2025, 6, 1, 11
    )


def test_daily_with_and_without_seconds():
    assert daily("09:00", timezone="UTC").next_fire_time(None, utc(2025, 6, 1, 9)) == utc(
        2025, 6, 2, 9
    )
    assert daily("9:00:30", timezone="UTC").next_fire_time(None, utc(2025, 6, 1, 9)) == utc(
        2025, 6, 1, 9, 0, 30
    )


@pytest.mark.parametrize("day", ["mon", "monday", "Monday", " MON ", 0])
def test_weekly_day_forms(day):
    trigger = weekly(day, "09:00", timezone="UTC")
    assert trigger.next_fire_time(None, utc(2025, 6, 4)) == utc(2025, 6, 9, 9)  # Wed -> Mon


def test_weekly_sunday_is_six():
    assert weekly(6, "00:00", timezone="UTC") == weekly("sun", "00:00", timezone="UTC")


def test_monthly_skips_months_without_the_day():
    trigger = monthly(31, "09:00", timezone="UTC")
    assert fire_times(trigger, utc(2025, 4, 15), 2) == [utc(2025, 5, 31, 9), utc(2025, 7, 31, 9)]
    leap_only = monthly(29, "00:00", timezone="UTC")
    assert [t.month for t in fire_times(leap_only, utc(2027, 1, 30), 2)] == [3, 4]
    assert fire_times(leap_only, utc(2028, 1, 30), 1) == [utc(2028, 2, 29)]


def test_custom_is_crontab():
    assert custom("0 9 * * 1-5", timezone="UTC") == CronTrigger.from_crontab(
        "0 9 * * 1-5", timezone="UTC"
    )


def test_friendly_constructors_pass_options():
    trigger = daily(
        "09:00", timezone="UTC", start_date="2025-07-01T00:00Z", end_date="2025-07-02T12:00Z"
    )
    assert fire_times(trigger, utc(2025, 6, 1), 5) == [utc(2025, 7, 1, 9), utc(2025, 7, 2, 9)]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: daily("25:00"), "daily: '25:00' is not a time HH:MM"),
        (lambda: daily("9am"), "daily: '9am' is not a time HH:MM"),
        (lambda: daily("09:60"), "daily: '09:60' is not a time HH:MM"),
        (lambda: daily("09:00:60"), "daily: '09:00:60' is not a time HH:MM"),
        (lambda: daily(900), "daily: 900 is not a time HH:MM"),
        (lambda: weekly("funday", "09:00"), "weekly: 'funday' is not a day name"),
        (lambda: weekly(7, "09:00"), "weekly: day 7 is out of range 0-6"),
        (lambda: weekly("mon", "24:00"), "weekly: '24:00' is not a time HH:MM"),
        (lambda: monthly(32, "09:00"), "monthly: day 32 is out of range 1-31"),
        (lambda: monthly(0, "09:00"), "monthly: day 0 is out of range 1-31"),
        (lambda: monthly("1", "09:00"), "monthly: day '1' is not a whole number"),
        (lambda: monthly(1, "9"), "monthly: '9' is not a time HH:MM"),
        (lambda: hourly(60), "hourly: minute 60 is out of range 0-59"),
        (lambda: hourly(-1), "hourly: minute -1 is out of range 0-59"),
        (lambda: custom("0 9 * *"), "crontab: expected 5 fields, got 4"),
        (
            lambda: daily("09:00", timezone="Nowhere/Land"),
            "timezone: 'Nowhere/Land' is not a known time zone (use a name such as"
            " 'Europe/Berlin', an offset such as '+02:00' or a POSIX rule such as"
            " 'CET-1CEST,M3.5.0,M10.5.0/3')",
        ),
    ],
)
def test_friendly_validation_messages(build, message):
    with pytest.raises(ScheduleError) as caught:
        build()
    assert str(caught.value) == message


def test_package_docstring_example():
    import doctest

    import pineapple.jobs.schedule

    assert doctest.testmod(pineapple.jobs.schedule).failed == 0


def test_parse_time_of_day():
    assert parse_time_of_day("07:05") == (7, 5, 0)
    assert parse_time_of_day(" 23:59:59 ") == (23, 59, 59)


# ---------------------------------------------------------------------------
# describe()


@pytest.mark.parametrize(
    ("trigger", "text"),
    [
        (daily("09:00"), "every day at 09:00"),
        (daily("09:00:30"), "every day at 09:00:30"),
        (daily("09:00", timezone="Europe/Berlin"), "every day at 09:00 (Europe/Berlin)"),
        (weekly("mon", "09:00"), "every monday at 09:00"),
        (monthly(1, "09:00"), "every month on day 1 at 09:00"),
        (hourly(5), "every hour at :05"),
        (custom("0 9 * * 1-5"), "cron 0 9 * * 1-5"),
        (custom("@daily"), "cron @daily"),
        (custom("0   9 * *  1-5"), "cron 0 9 * * 1-5"),
        (CronTrigger(minute=0, hour=9, day_of_week="0-4"), "cron 0 9 * * mon-fri"),
        (CronTrigger(minute="*/15", day_of_week="1,3"), "cron */15 * * * tue,thu"),
        (CronTrigger(minute=0, hour=9, day_of_week="*/2"), "cron 0 9 * * */2"),
        (CronTrigger(second="*/10"), "cron second=*/10"),
        (
            CronTrigger(minute=0, hour=0, day=1, month=1, year=2030),
            "cron minute=0 hour=0 day=1 month=1 year=2030",
        ),
        (every("90s", start_date=utc(2025, 1, 1)), "every 1m30s"),
        (every("2h32m", start_date=utc(2025, 1, 1)), "every 2h32m"),
        (once("2025-06-01T09:00", timezone="Europe/Berlin"), "once at 2025-06-01 09:00 CEST"),
        (once("2025-06-01T09:00:30Z"), "once at 2025-06-01 09:00:30 UTC"),
    ],
)
def test_describe(trigger, text):
    assert trigger.describe() == text


# ---------------------------------------------------------------------------
# Time zones


@pytest.mark.parametrize(
    ("value", "offset_jan", "offset_jul"),
    [
        ("Europe/Berlin", 1, 2),
        ("America/New_York", -5, -4),
        ("UTC", 0, 0),
        ("utc", 0, 0),
        ("+05:30", 5.5, 5.5),
        ("-03:00", -3, -3),
        ("CET-1CEST,M3.5.0,M10.5.0/3", 1, 2),
        ("EST5EDT,M3.2.0,M11.1.0", -5, -4),
        (BERLIN, 1, 2),
    ],
)
def test_resolve_timezone(value, offset_jan, offset_jul):
    zone = resolve_timezone(value)
    assert datetime(2025, 1, 15, tzinfo=zone).utcoffset() == timedelta(hours=offset_jan)
    assert datetime(2025, 7, 15, tzinfo=zone).utcoffset() == timedelta(hours=offset_jul)


@pytest.mark.parametrize(
    "value", ["Mars/Base", "../etc/passwd", "", "+25:00", "UTC+2", "CST-8", "bad,rule1", 5]
)
def test_resolve_timezone_rejects(value):
    with pytest.raises(ScheduleError, match=r"^timezone: "):
        resolve_timezone(value)


def test_local_timezone_from_tz_environment(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    assert local_timezone() == named_zone("America/New_York")
    monkeypatch.setenv("TZ", ":Europe/Berlin")
    assert local_timezone() == BERLIN


def test_local_timezone_from_openwrt_posix_string(monkeypatch):
    monkeypatch.setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")
    zone = local_timezone()
    assert datetime(2025, 7, 1, tzinfo=zone).utcoffset() == timedelta(hours=2)
    monkeypatch.delenv("TZ")
    monkeypatch.setattr(_base, "_read_etc_tz", lambda: "EST5EDT,M3.2.0,M11.1.0")
    assert datetime(2025, 7, 1, tzinfo=local_timezone()).utcoffset() == timedelta(hours=-4)


def test_local_timezone_accepts_rule_less_posix_strings(monkeypatch):
    # OpenWrt writes e.g. "CST-8" for Asia/Shanghai; the system's own setting is trusted
    monkeypatch.setenv("TZ", "CST-8")
    assert datetime(2025, 7, 1, tzinfo=local_timezone()).utcoffset() == timedelta(hours=8)


def test_local_timezone_falls_back_to_fixed_offset(monkeypatch):
    monkeypatch.delenv("TZ", raising=False)
    monkeypatch.setattr(_base, "_read_etc_tz", lambda: "")
    monkeypatch.setattr(_base, "_etc_localtime", lambda: None)
    assert local_timezone() == datetime.now().astimezone().tzinfo


def test_default_timezone_is_local_and_not_persisted(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    trigger = daily("09:00")
    assert trigger.timezone == named_zone("America/New_York")
    assert "timezone" not in trigger.to_dict()
    assert trigger.next_fire_time(None, utc(2025, 6, 1)) == utc(2025, 6, 1, 13)
