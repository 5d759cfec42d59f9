"""CronTrigger: field syntax, next-run table, day/weekday semantics,
impossible expressions and daylight saving."""
from __future__ import annotations

import random
import time
from datetime import datetime, timedelta, timezone

import pytest

from pineapple.jobs.schedule import CronTrigger, ScheduleError, custom
from pineapple.jobs.schedule._base import overlap_end
from pineapple.jobs.schedule.zones import named_zone

UTC = timezone.utc
BERLIN = named_zone("Europe/Berlin")
NEW_YORK = named_zone("America/New_York")


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


def fire_times(trigger, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times, feeding each back as previous and now,
    as the engine does after each run."""
    times, previous = [], None
    for _ in range(count):
        previous = trigger.next_fire_time(previous, now)
        if previous is None:
            break
        times.append(previous)
        now = previous
    return times


def as_utc(times: list[datetime]) -> list[datetime]:
    return [moment.astimezone(UTC) for moment in times]


# ---------------------------------------------------------------------------
# Next-run table (UTC zone so only the calendar logic is exercised)

CRONTAB_CASES = [
    # weekdays, numbers and names; 0 and 7 are Sunday
    ("0 9 * * 1-5", utc(2025, 6, 6, 10, 0), utc(2025, 6, 9, 9, 0)),  # Fri after 9 -> Mon
    ("0 9 * * 1-5", utc(2025, 6, 9, 8, 59, 59), utc(2025, 6, 9, 9, 0)),
    ("0 9 * * mon-fri", utc(2025, 6, 6, 10, 0), utc(2025, 6, 9, 9, 0)),
    ("0 9 * * MON-FRI", utc(2025, 6, 7, 0, 0), utc(2025, 6, 9, 9, 0)),
    ("0 9 * * sat,sun", utc(2025, 6, 4, 12, 0), utc(2025, 6, 7, 9, 0)),
    ("0 9 * * sat-sun", utc(2025, 6, 9, 12, 0), utc(2025, 6, 14, 9, 0)),
    ("0 9 * * 0", utc(2025, 6, 7, 10, 0), utc(2025, 6, 8, 9, 0)),
    ("0 9 * * 7", utc(2025, 6, 7, 10, 0), utc(2025, 6, 8, 9, 0)),
    ("0 9 * * 5-7", utc(2025, 6, 9, 0, 0), utc(2025, 6, 13, 9, 0)),
    ("0 9 * * 1-7/2", utc(2025, 6, 10, 0, 0), utc(2025, 6, 11, 9, 0)),  # mon,wed,fri,sun
    ("0 0 * * sunday", utc(2025, 6, 2, 0, 0), utc(2025, 6, 8, 0, 0)),
    # steps, ranges and lists
    ("*/15 * * * *", utc(2025, 6, 1, 10, 7, 30), utc(2025, 6, 1, 10, 15)),
    ("*/15 * * * *", utc(2025, 6, 1, 10, 45), utc(2025, 6, 1, 11, 0)),  # strictly after now
    ("*/15 * * * *", utc(2025, 6, 1, 23, 50), utc(2025, 6, 2, 0, 0)),
    ("5,35 * * * *", utc(2025, 6, 1, 10, 6), utc(2025, 6, 1, 10, 35)),
    ("5/20 * * * *", utc(2025, 6, 1, 10, 26), utc(2025, 6, 1, 10, 45)),
    ("0 8-18/2 * * *", utc(2025, 6, 1, 18, 30), utc(2025, 6, 2, 8, 0)),
    ("0 8-18/2 * * *", utc(2025, 6, 1, 9, 0), utc(2025, 6, 1, 10, 0)),
    ("30 23 * * *", utc(2025, 12, 31, 23, 30), utc(2026, 1, 1, 23, 30)),
    ("0 0 1 * *", utc(2025, 12, 15), utc(2026, 1, 1)),
    ("0 12 1 jan,jul *", utc(2025, 2, 1), utc(2025, 7, 1, 12, 0)),
    ("0 12 1 jan-mar *", utc(2025, 3, 1, 12, 0), utc(2026, 1, 1, 12, 0)),
    # the 31st is skipped in short months, Feb 29 waits for a leap year
    ("0 0 31 * *", utc(2025, 4, 15), utc(2025, 5, 31)),
    ("0 0 31 * *", utc(2025, 5, 31), utc(2025, 7, 31)),
    ("0 0 30 * *", utc(2025, 1, 31), utc(2025, 3, 30)),
    ("0 0 29 2 *", utc(2025, 3, 1), utc(2028, 2, 29)),
    ("0 0 29 2 *", utc(2096, 3, 1), utc(2104, 2, 29)),  # 2100 is not a leap year
    ("0 0 29 * *", utc(2025, 2, 1), utc(2025, 3, 29)),
    # day AND weekday restricted: either matches (classic cron)
    ("0 0 13 * fri", utc(2025, 6, 1), utc(2025, 6, 6)),  # a Friday
    ("0 0 13 * fri", utc(2025, 7, 12), utc(2025, 7, 13)),  # the 13th, a Sunday
    ("0 0 1-7 * mon", utc(2025, 6, 7, 12), utc(2025, 6, 9)),  # Monday after days 1-7
    # a day field starting with * keeps both required (Vixie cron): odd Mondays
    ("0 0 */2 * mon", utc(2025, 6, 1), utc(2025, 6, 9)),
    # nicknames
    ("@daily", utc(2025, 6, 1, 10), utc(2025, 6, 2)),
    ("@hourly", utc(2025, 6, 1, 10, 1), utc(2025, 6, 1, 11)),
    ("@weekly", utc(2025, 6, 2), utc(2025, 6, 8)),  # Sunday midnight
    ("@monthly", utc(2025, 6, 2), utc(2025, 7, 1)),
    ("@yearly", utc(2025, 6, 2), utc(2026, 1, 1)),
]


@pytest.mark.parametrize(("expr", "now", "expected"), CRONTAB_CASES)
def test_crontab_next_fire_time(expr, now, expected):
    trigger = CronTrigger.from_crontab(expr, timezone="UTC")
    assert trigger.next_fire_time(None, now) == expected


FIELD_CASES = [
    ({"second": "*/10"}, utc(2025, 6, 1, 10, 0, 5), utc(2025, 6, 1, 10, 0, 10)),
    ({"second": "*/10"}, utc(2025, 6, 1, 10, 59, 55), utc(2025, 6, 1, 11, 0, 0)),
    (
        {"second": 30, "minute": 15, "hour": 9},
        utc(2025, 6, 1, 9, 15, 30),
        utc(2025, 6, 2, 9, 15, 30),
    ),
    ({"minute": 0, "hour": 9, "day_of_week": "0-4"}, utc(2025, 6, 6, 10), utc(2025, 6, 9, 9)),
    ({"minute": 0, "hour": 0, "day_of_week": 4}, utc(2025, 6, 1), utc(2025, 6, 6)),  # 4 = Friday
    ({"minute": 0, "hour": 0, "day_of_week": "fri"}, utc(2025, 6, 1), utc(2025, 6, 6)),
    ({"minute": 0, "hour": 0, "day_of_week": "sat,sun"}, utc(2025, 6, 2), utc(2025, 6, 7)),
    ({"minute": 0, "hour": 0, "month": "feb-mar", "day": 1}, utc(2025, 3, 5), utc(2026, 2, 1)),
    (
        {"minute": 0, "hour": 0, "day": 1, "month": 1, "year": 2026},
        utc(2025, 3, 1),
        utc(2026, 1, 1),
    ),
    (
        {"minute": 0, "hour": 0, "year": "2026-2030/2", "day": 1, "month": 1},
        utc(2026, 6, 1),
        utc(2028, 1, 1),
    ),
    ({"minute": "0, 30", "hour": "1 ,2"}, utc(2025, 6, 1, 1, 10), utc(2025, 6, 1, 1, 30)),
]


@pytest.mark.parametrize(("fields", "now", "expected"), FIELD_CASES)
def test_field_form_next_fire_time(fields, now, expected):
    assert CronTrigger(timezone="UTC", **fields).next_fire_time(None, now) == expected


def test_field_defaults_fire_every_minute_at_second_zero():
    trigger = CronTrigger(timezone="UTC")
    assert fire_times(trigger, utc(2025, 6, 1, 10, 0, 1), 3) == [
        utc(2025, 6, 1, 10, 1),
        utc(2025, 6, 1, 10, 2),
        utc(2025, 6, 1, 10, 3),
    ]


def test_thirty_first_runs_only_in_long_months():
    trigger = custom("0 0 31 * *", timezone="UTC")
    months = [moment.month for moment in fire_times(trigger, utc(2025, 1, 1), 7)]
    assert months == [1, 3, 5, 7, 8, 10, 12]


def test_either_day_or_weekday_over_a_month():
    trigger = custom("0 0 13 * fri", timezone="UTC")
    days = [moment.day for moment in fire_times(trigger, utc(2025, 6, 30), 6)]
    assert days == [4, 11, 13, 18, 25, 1]  # July 2025: Fridays and the 13th, then Aug 1 (Fri)


def test_previous_fire_time_later_than_now_wins():
    trigger = custom("0 * * * *", timezone="UTC")
    assert trigger.next_fire_time(utc(2025, 6, 1, 12), utc(2025, 6, 1, 10, 30)) == utc(
        2025, 6, 1, 13
    )


def test_now_in_other_zone_is_the_same_instant():
    trigger = custom("0 9 * * *", timezone="UTC")
    now = datetime(2025, 6, 1, 10, 30, tzinfo=BERLIN)  # 08:30 UTC
    assert trigger.next_fire_time(None, now) == utc(2025, 6, 1, 9)


def test_result_is_in_trigger_zone():
    fire = custom("0 9 * * *", timezone="Europe/Berlin").next_fire_time(None, utc(2025, 6, 1))
    assert fire.tzinfo is BERLIN
    assert (fire.hour, fire.utcoffset()) == (9, timedelta(hours=2))


def test_start_and_end_dates_are_inclusive():
    trigger = custom(
        "0 * * * *",
        timezone="UTC",
        start_date=utc(2025, 6, 1, 10),
        end_date=utc(2025, 6, 1, 12),
    )
    assert fire_times(trigger, utc(2025, 6, 1), 10) == [
        utc(2025, 6, 1, 10),
        utc(2025, 6, 1, 11),
        utc(2025, 6, 1, 12),
    ]


def test_year_in_the_past_means_finished():
    trigger = CronTrigger(year=2020, timezone="UTC")
    assert trigger.next_fire_time(None, utc(2025, 1, 1)) is None


def test_search_stops_at_year_9999():
    trigger = CronTrigger(minute=0, hour=0, day=1, month=1, timezone="UTC")
    assert trigger.next_fire_time(None, datetime(9999, 6, 1, tzinfo=UTC)) is None


def test_search_is_bounded_and_fast():
    # every expression that passes construction finds its answer quickly
    started = time.perf_counter()
    assert custom("0 0 29 2 *", timezone="UTC").next_fire_time(None, utc(2096, 3, 1)) == utc(
        2104, 2, 29
    )
    assert CronTrigger(day=29, month=2, year="2101-9999/3", timezone="UTC").next_fire_time(
        None, utc(2025, 1, 1)
    ) == utc(2104, 2, 29)
    assert time.perf_counter() - started < 1.0


def test_jitter_delays_within_bounds_deterministically():
    base = utc(2025, 6, 1, 9)
    first = custom("0 9 * * *", timezone="UTC", jitter=60, rng=random.Random(7))
    second = custom("0 9 * * *", timezone="UTC", jitter=60, rng=random.Random(7))
    got = first.next_fire_time(None, utc(2025, 6, 1))
    assert base <= got <= base + timedelta(seconds=60)
    assert got == second.next_fire_time(None, utc(2025, 6, 1))
    # feeding the jittered time back moves on to the next day's slot
    following = first.next_fire_time(got, got)
    assert base + timedelta(days=1) <= following <= base + timedelta(days=1, seconds=60)


def test_jitter_without_rng_uses_random_module():
    trigger = custom("0 9 * * *", timezone="UTC", jitter="30s")
    got = trigger.next_fire_time(None, utc(2025, 6, 1))
    assert utc(2025, 6, 1, 9) <= got <= utc(2025, 6, 1, 9, 0, 30)


def test_naive_now_is_rejected():
    with pytest.raises(ScheduleError, match="must be timezone-aware"):
        custom("0 9 * * *", timezone="UTC").next_fire_time(None, datetime(2025, 6, 1))


# ---------------------------------------------------------------------------
# Validation messages


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hour": 24}, "hour: 24 is out of range 0-23"),
        ({"hour": "24"}, "hour: 24 is out of range 0-23"),
        ({"minute": 60}, "minute: 60 is out of range 0-59"),
        ({"second": "61"}, "second: 61 is out of range 0-59"),
        ({"day": 0}, "day: 0 is out of range 1-31"),
        ({"day": "32"}, "day: 32 is out of range 1-31"),
        ({"month": 13}, "month: 13 is out of range 1-12"),
        ({"month": "foo"}, "month: 'foo' is not a month name"),
        ({"month": "jan-foo"}, "month: 'foo' is not a month name"),
        ({"day_of_week": "funday"}, "day_of_week: 'funday' is not a day name"),
        ({"day_of_week": 7}, "day_of_week: 7 is out of range 0-6"),
        ({"day_of_week": "fri-mon"}, "day_of_week: range 'fri-mon' goes backwards"),
        ({"year": 1969}, "year: 1969 is out of range 1970-9999"),
        ({"hour": "5-3"}, "hour: range '5-3' goes backwards"),
        ({"hour": "abc"}, "hour: 'abc' is not a number"),
        ({"minute": "*/0"}, "minute: step 0 must be at least 1"),
        ({"minute": "*/x"}, "minute: step 'x' is not a number"),
        ({"minute": "*/"}, "minute: step '' is not a number"),
        ({"minute": "1,,2"}, "minute: empty list item in '1,,2'"),
        ({"minute": ""}, "minute: empty value"),
        ({"minute": "  "}, "minute: empty value"),
        ({"minute": "1-"}, "minute: '1-' is not a valid value or range"),
        ({"minute": "-1"}, "minute: '-1' is not a valid value or range"),
        ({"minute": "1-2-3"}, "minute: '1-2-3' is not a valid value or range"),
        (
            {"minute": 1.5},
            "minute: 1.5 is not a cron field (use a string such as '*/15' or a number)",
        ),
        (
            {"minute": True},
            "minute: True is not a cron field (use a string such as '*/15' or a number)",
        ),
        ({"day": 31, "month": 2}, "cron: day '31' never occurs in month '2'"),
        ({"day": "30,31", "month": "feb"}, "cron: day '30,31' never occurs in month 'feb'"),
        ({"day": 29, "month": 2, "year": 2025}, "cron: February 29 never occurs in year '2025'"),
        (
            {"timezone": "Mars/Base"},
            "timezone: 'Mars/Base' is not a known time zone (use a name such as 'Europe/Berlin',"
            " an offset such as '+02:00' or a POSIX rule such as 'CET-1CEST,M3.5.0,M10.5.0/3')",
        ),
        (
            {"start_date": "soon"},
            "start_date: 'soon' is not an ISO date-time like 2025-06-01T09:00",
        ),
        (
            {"start_date": "2025-06-02T00:00+00:00", "end_date": "2025-06-01T00:00+00:00"},
            "end_date: 2025-06-01T00:00:00+00:00 is before start_date 2025-06-02T00:00:00+00:00",
        ),
        ({"jitter": -1}, "jitter: -1 must not be negative"),
    ],
)
def test_field_validation_messages(fields, message):
    with pytest.raises(ScheduleError) as caught:
        CronTrigger(**fields)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 9 * *", "crontab: expected 5 fields, got 4"),
        ("0 0 9 * * *", "crontab: expected 5 fields, got 6"),
        ("", "crontab: expected 5 fields, got 0"),
        ("0 24 * * *", "hour: 24 is out of range 0-23"),
        ("60 * * * *", "minute: 60 is out of range 0-59"),
        ("0 0 * * 8", "day_of_week: 8 is out of range 0-7"),
        ("0 0 * * funday", "day_of_week: 'funday' is not a day name"),
        ("0 0 * * 5-1", "day_of_week: range '5-1' goes backwards"),
        ("0 0 1 smarch *", "month: 'smarch' is not a month name"),
        ("0 0 31 2 *", "cron: day '31' never occurs in month '2'"),
        ("0 0 30 2 *", "cron: day '30' never occurs in month '2'"),
        ("0 0 31 4,6,9,11 *", "cron: day '31' never occurs in month '4,6,9,11'"),
        ("@reboot", "crontab: unknown nickname '@reboot'"),
        (None, "crontab: None is not a string"),
    ],
)
def test_crontab_validation_messages(expr, message):
    with pytest.raises(ScheduleError) as caught:
        CronTrigger.from_crontab(expr)
    assert str(caught.value) == message


def test_impossible_day_with_weekday_is_possible_through_the_weekday():
    # both restricted -> either matches, so Feb 31 or any Monday still fires
    trigger = custom("0 0 31 2 mon", timezone="UTC")
    assert trigger.next_fire_time(None, utc(2025, 6, 1)) == utc(2026, 2, 2)


def test_fields_are_keyword_only():
    with pytest.raises(TypeError):
        CronTrigger(0, 5)  # type: ignore[misc]


def test_triggers_are_immutable():
    trigger = custom("0 9 * * *")
    with pytest.raises(AttributeError):
        trigger.timezone = UTC  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del trigger.crontab


# ---------------------------------------------------------------------------
# Daylight saving. Berlin 2025: spring forward Mar 30 02:00 CET -> 03:00 CEST
# (01:00 UTC); fall back Oct 26 03:00 CEST -> 02:00 CET (01:00 UTC).
# New York 2025: spring forward Mar 9 02:00 EST -> 03:00 EDT (07:00 UTC);
# fall back Nov 2 02:00 EDT -> 01:00 EST (06:00 UTC).


def test_berlin_daily_0230_across_spring_forward_runs_once_at_0300():
    trigger = CronTrigger.from_crontab("30 2 * * *", timezone="Europe/Berlin")
    times = fire_times(trigger, utc(2025, 3, 28, 12), 3)
    assert as_utc(times) == [
        utc(2025, 3, 29, 1, 30),
        utc(2025, 3, 30, 1, 0),
        utc(2025, 3, 31, 0, 30),
    ]
    gap_day = times[1]
    assert (gap_day.hour, gap_day.minute, gap_day.tzname()) == (3, 0, "CEST")


def test_new_york_daily_0230_across_spring_forward_runs_once_at_0300():
    trigger = CronTrigger.from_crontab("30 2 * * *", timezone="America/New_York")
    times = fire_times(trigger, utc(2025, 3, 7, 12), 3)
    assert as_utc(times) == [utc(2025, 3, 8, 7, 30), utc(2025, 3, 9, 7, 0), utc(2025, 3, 10, 6, 30)]
    assert (times[1].hour, times[1].minute, times[1].tzname()) == (3, 0, "EDT")


def test_new_york_daily_0130_across_fall_back_runs_once_on_first_occurrence():
    trigger = CronTrigger.from_crontab("30 1 * * *", timezone="America/New_York")
    times = fire_times(trigger, utc(2025, 10, 31, 12), 3)
    assert as_utc(times) == [
        utc(2025, 11, 1, 5, 30),
        utc(2025, 11, 2, 5, 30),
        utc(2025, 11, 3, 6, 30),
    ]
    assert (times[1].tzname(), times[1].fold) == ("EDT", 0)


def test_berlin_daily_0130_across_fall_back_is_unaffected():
    trigger = CronTrigger.from_crontab("30 1 * * *", timezone="Europe/Berlin")
    times = fire_times(trigger, utc(2025, 10, 25, 12), 2)
    assert as_utc(times) == [utc(2025, 10, 25, 23, 30), utc(2025, 10, 27, 0, 30)]


def test_berlin_daily_0230_across_fall_back_runs_once_on_first_occurrence():
    trigger = CronTrigger.from_crontab("30 2 * * *", timezone="Europe/Berlin")
    times = fire_times(trigger, utc(2025, 10, 25, 12), 2)
    assert as_utc(times) == [utc(2025, 10, 26, 0, 30), utc(2025, 10, 27, 1, 30)]
    assert times[0].tzname() == "CEST"


def test_berlin_hourly_across_spring_forward_fires_every_real_hour():
    trigger = CronTrigger.from_crontab("0 * * * *", timezone="Europe/Berlin")
    times = fire_times(trigger, utc(2025, 3, 29, 22, 30), 4)
    assert as_utc(times) == [
        utc(2025, 3, 29, 23),
        utc(2025, 3, 30, 0),
        utc(2025, 3, 30, 1),
        utc(2025, 3, 30, 2),
    ]
    assert [moment.hour for moment in times] == [0, 1, 3, 4]


def test_new_york_hourly_across_spring_forward_fires_every_real_hour():
    trigger = CronTrigger.from_crontab("0 * * * *", timezone="America/New_York")
    times = fire_times(trigger, utc(2025, 3, 9, 5, 30), 3)
    assert as_utc(times) == [utc(2025, 3, 9, 6), utc(2025, 3, 9, 7), utc(2025, 3, 9, 8)]
    assert [moment.hour for moment in times] == [1, 3, 4]


def test_berlin_hourly_across_fall_back_skips_the_repeated_hour():
    trigger = CronTrigger.from_crontab("0 * * * *", timezone="Europe/Berlin")
    times = fire_times(trigger, utc(2025, 10, 25, 22, 30), 4)
    # 01:00 CEST, 02:00 CEST, (02:00 CET is a repeat), 03:00 CET, 04:00 CET
    assert as_utc(times) == [
        utc(2025, 10, 25, 23),
        utc(2025, 10, 26, 0),
        utc(2025, 10, 26, 2),
        utc(2025, 10, 26, 3),
    ]
    assert [moment.hour for moment in times] == [1, 2, 3, 4]


def test_new_york_hourly_across_fall_back_skips_the_repeated_hour():
    trigger = CronTrigger.from_crontab("0 * * * *", timezone="America/New_York")
    times = fire_times(trigger, utc(2025, 11, 2, 3, 30), 3)
    # 00:00 EDT, 01:00 EDT, (01:00 EST is a repeat), 02:00 EST
    assert as_utc(times) == [utc(2025, 11, 2, 4), utc(2025, 11, 2, 5), utc(2025, 11, 2, 7)]


def test_quarter_hours_inside_the_gap_collapse_into_one_run():
    trigger = CronTrigger.from_crontab("*/15 * * * *", timezone="Europe/Berlin")
    times = fire_times(trigger, utc(2025, 3, 30, 0, 40), 4)
    assert [moment.strftime("%H:%M %Z") for moment in times] == [
        "01:45 CET",
        "03:00 CEST",
        "03:15 CEST",
        "03:30 CEST",
    ]


def test_quarter_hours_across_fall_back_run_the_repeated_hour_once():
    trigger = CronTrigger.from_crontab("*/15 * * * *", timezone="Europe/Berlin")
    times = fire_times(trigger, utc(2025, 10, 26, 0, 40), 3)
    assert [moment.strftime("%H:%M %Z") for moment in times] == [
        "02:45 CEST",
        "03:00 CET",
        "03:15 CET",
    ]


@pytest.mark.parametrize(
    "now",
    [
        utc(2025, 10, 26, 1, 30),  # 02:30 CET, second pass of the repeated hour
        datetime(2025, 10, 26, 2, 30, fold=1, tzinfo=BERLIN),  # the same instant
    ],
)
def test_now_inside_the_second_pass_does_not_rerun_the_first(now):
    daily_0245 = CronTrigger.from_crontab("45 2 * * *", timezone="Europe/Berlin")
    assert daily_0245.next_fire_time(None, now) == utc(2025, 10, 27, 1, 45)
    quarter_hours = CronTrigger.from_crontab("*/15 * * * *", timezone="Europe/Berlin")
    assert quarter_hours.next_fire_time(None, now) == utc(2025, 10, 26, 2, 0)  # 03:00 CET
    every_second = CronTrigger(second="*", minute="*", timezone="Europe/Berlin")
    assert every_second.next_fire_time(None, now) == utc(2025, 10, 26, 2, 0)


def test_overlap_end_marks_the_end_of_the_repeated_hour():
    second_pass = datetime(2025, 10, 26, 2, 30, fold=1, tzinfo=BERLIN)
    assert overlap_end(second_pass) == datetime(2025, 10, 26, 3, 0)
    assert overlap_end(second_pass.replace(fold=0)) is None
    assert overlap_end(datetime(2025, 6, 1, 2, 30, fold=1, tzinfo=BERLIN)) is None
    lord_howe = named_zone("Australia/Lord_Howe")  # repeats 01:30-02:00
    assert overlap_end(datetime(2025, 4, 6, 1, 40, fold=1, tzinfo=lord_howe)) == datetime(
        2025, 4, 6, 2, 0
    )


def test_now_inside_the_first_pass_continues_normally():
    trigger = CronTrigger.from_crontab("*/15 * * * *", timezone="Europe/Berlin")
    fire = trigger.next_fire_time(None, utc(2025, 10, 26, 0, 20))
    assert fire.astimezone(UTC) == utc(2025, 10, 26, 0, 30)


def test_ambiguous_results_need_utc_for_equality():
    # PEP 495: == across zones is False when either side's offset depends on
    # fold, although < and > stay correct. Engines should compare in UTC.
    fire = CronTrigger.from_crontab("30 2 * * *", timezone="Europe/Berlin").next_fire_time(
        None, utc(2025, 10, 26)
    )
    assert fire != utc(2025, 10, 26, 0, 30)
    assert fire.astimezone(UTC) == utc(2025, 10, 26, 0, 30)
    assert utc(2025, 10, 26, 0, 29) < fire < utc(2025, 10, 26, 0, 31)


def test_gap_run_is_not_repeated_when_called_at_the_gap_end():
    trigger = CronTrigger.from_crontab("30 2 * * *", timezone="Europe/Berlin")
    gap_run = utc(2025, 3, 30, 1, 0)
    assert trigger.next_fire_time(gap_run, gap_run) == utc(2025, 3, 31, 0, 30)


def test_posix_tz_string_zone_follows_dst():
    trigger = CronTrigger.from_crontab("30 2 * * *", timezone="CET-1CEST,M3.5.0,M10.5.0/3")
    times = fire_times(trigger, utc(2025, 3, 28, 12), 3)
    assert as_utc(times) == [
        utc(2025, 3, 29, 1, 30),
        utc(2025, 3, 30, 1, 0),
        utc(2025, 3, 31, 0, 30),
    ]


def test_start_date_in_a_gap_means_the_gap_end():
    trigger = CronTrigger(minute="*", timezone="Europe/Berlin", start_date="2025-03-30T02:30")
    assert trigger.start_date == utc(2025, 3, 30, 1, 0)
    assert trigger.next_fire_time(None, utc(2025, 3, 29)) == utc(2025, 3, 30, 1, 0)
