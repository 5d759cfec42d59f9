"""trigger_from_spec (the socket API shapes), to_dict / trigger_from_dict
round trips, equality, hashing and pickling."""
from __future__ import annotations

import copy
import json
import pickle
import random
from datetime import datetime, timezone

import pytest

from pineapple.jobs.schedule import (
    CronTrigger,
    DateTrigger,
    IntervalTrigger,
    ScheduleError,
    custom,
    daily,
    every,
    hourly,
    monthly,
    once,
    trigger_from_dict,
    trigger_from_spec,
    weekly,
)

UTC = timezone.utc
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


# ---------------------------------------------------------------------------
# Spec shapes


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"type": "date", "run_date": "2025-06-02T09:00", "timezone": "Europe/Berlin"},
            once("2025-06-02T09:00", timezone="Europe/Berlin"),
        ),
        ({"type": "interval", "every": "30m"}, every("30m", created_at=NOW)),
        ({"type": "interval", "every": 90}, every(90, created_at=NOW)),
        ({"type": "interval", "minutes": 30}, IntervalTrigger(minutes=30, created_at=NOW)),
        (
            {"type": "interval", "hours": 1, "minutes": 30, "start_date": "2025-06-01T00:00Z"},
            IntervalTrigger(hours=1.5, start_date=utc(2025, 6, 1)),
        ),
        ({"type": "cron", "expr": "0 4 * * *"}, custom("0 4 * * *")),
        (
            {"type": "cron", "hour": "4", "day_of_week": "mon-fri"},
            CronTrigger(hour="4", day_of_week="mon-fri"),
        ),
        ({"type": "cron", "minute": 0, "hour": 4}, CronTrigger(minute=0, hour=4)),
        ({"type": "daily", "at": "04:00"}, daily("04:00")),
        ({"type": "weekly", "day": "mon", "at": "09:00"}, weekly("mon", "09:00")),
        ({"type": "weekly", "day": 0, "at": "09:00"}, weekly("mon", "09:00")),
        ({"type": "monthly", "day": 1, "at": "09:00"}, monthly(1, "09:00")),
        ({"type": "hourly"}, hourly(0)),
        ({"type": "hourly", "minute": 15}, hourly(15)),
        (
            {"type": "daily", "at": "04:00", "timezone": "America/New_York", "jitter": "5m"},
            daily("04:00", timezone="America/New_York", jitter=300),
        ),
        (
            {
                "type": "cron",
                "expr": "*/5 * * * *",
                "start_date": "2025-07-01T00:00",
                "end_date": "2025-08-01T00:00",
                "timezone": "UTC",
            },
            custom(
                "*/5 * * * *", start_date=utc(2025, 7, 1), end_date=utc(2025, 8, 1), timezone="UTC"
            ),
        ),
        ({"type": "daily", "at": "04:00", "timezone": None}, daily("04:00")),
    ],
)
def test_spec_shapes(spec, expected):
    built = trigger_from_spec(spec, now=NOW)
    assert built == expected
    assert type(built) is type(expected)


def test_interval_spec_starts_one_interval_after_now():
    trigger = trigger_from_spec({"type": "interval", "every": "30m"}, now=NOW)
    assert trigger.next_fire_time(None, NOW) == utc(2025, 6, 1, 12, 30)


def test_spec_passes_rng_to_jitter():
    spec = {"type": "interval", "every": "10m", "jitter": 60, "start_date": "2025-06-01T12:00Z"}
    first = trigger_from_spec(spec, rng=random.Random(1)).next_fire_time(None, NOW)
    second = trigger_from_spec(spec, rng=random.Random(1)).next_fire_time(None, NOW)
    assert first == second
    assert utc(2025, 6, 1, 12, 10) <= first <= utc(2025, 6, 1, 12, 11)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([], "spec: expected an object, got list"),
        ({}, "spec: missing 'type' (one of cron, daily, date, hourly, interval, monthly, weekly)"),
        (
            {"type": "yearly"},
            "spec: unknown type 'yearly' (expected one of cron, daily, date, hourly, interval, monthly, weekly)",
        ),
        (
            {"type": "cron", "hours": "4"},
            "cron: unknown key 'hours' (allowed: day, day_of_week, end_date, expr, hour, jitter,"
            " minute, month, second, start_date, timezone, year)",
        ),
        (
            {"type": "daily", "at": "04:00", "minute": 5},
            "daily: unknown key 'minute' (allowed: at, end_date, jitter, start_date, timezone)",
        ),
        (
            {"type": "date", "run_date": "2025-06-02T09:00", "jitter": 5},
            "date: unknown key 'jitter' (allowed: run_date, timezone)",
        ),
        (
            {"type": "interval", "minute": 30},
            "interval: unknown key 'minute' (allowed: days, end_date, every, hours, jitter, minutes,"
            " seconds, start_date, timezone, weeks)",
        ),
        ({"type": "date"}, "date: missing 'run_date'"),
        ({"type": "daily"}, "daily: missing 'at'"),
        ({"type": "weekly", "at": "09:00"}, "weekly: missing 'day'"),
        ({"type": "weekly", "day": "mon"}, "weekly: missing 'at'"),
        ({"type": "monthly", "at": "09:00"}, "monthly: missing 'day'"),
        (
            {"type": "interval"},
            "interval: missing 'every' (or one of weeks, days, hours, minutes, seconds)",
        ),
        (
            {"type": "interval", "every": "30m", "minutes": 5},
            "interval: give either 'every' or unit keys (minutes), not both",
        ),
        (
            {"type": "cron"},
            "cron: missing 'expr' (or field keys second, minute, hour, day, month, day_of_week, year)",
        ),
        (
            {"type": "cron", "expr": "0 4 * * *", "hour": 5},
            "cron: give either 'expr' or field keys (hour), not both",
        ),
        ({"type": "cron", "expr": 5}, "crontab: 5 is not a string"),
        ({"type": "cron", "expr": "0 9 * *"}, "crontab: expected 5 fields, got 4"),
        ({"type": "cron", "hour": 24}, "hour: 24 is out of range 0-23"),
        ({"type": "cron", "day_of_week": "funday"}, "day_of_week: 'funday' is not a day name"),
        ({"type": "daily", "at": "25:00"}, "daily: '25:00' is not a time HH:MM"),
        ({"type": "weekly", "day": "funday", "at": "09:00"}, "weekly: 'funday' is not a day name"),
        ({"type": "monthly", "day": 32, "at": "09:00"}, "monthly: day 32 is out of range 1-31"),
        ({"type": "hourly", "minute": 60}, "hourly: minute 60 is out of range 0-59"),
        (
            {"type": "interval", "every": "5x"},
            "every: '5x' is not a duration like 90s, 30m, 2h32m, 1d",
        ),
        ({"type": "interval", "every": "-3m"}, "every: '-3m' must be positive"),
        ({"type": "interval", "minutes": "30"}, "interval: minutes must be a number, got '30'"),
        (
            {"type": "interval", "every": "1m", "jitter": "x"},
            "jitter: 'x' is not a duration like 90s, 30m, 2h32m, 1d",
        ),
        (
            {"type": "daily", "at": "04:00", "start_date": "tomorrow"},
            "start_date: 'tomorrow' is not an ISO date-time like 2025-06-01T09:00",
        ),
        ({"type": "date", "run_date": 1717232400}, "run_date: 1717232400 is not a date-time"),
    ],
)
def test_spec_errors(spec, message):
    with pytest.raises(ScheduleError) as caught:
        trigger_from_spec(spec, now=NOW)
    assert str(caught.value) == message


# ---------------------------------------------------------------------------
# Persistence

SAMPLES = [
    once("2025-06-02T09:00", timezone="Europe/Berlin"),
    DateTrigger(datetime(2025, 6, 2, 9, 0, 0, 123456, tzinfo=UTC)),
    every("30m", created_at=NOW),
    every(
        "1.5s", start_date=utc(2025, 1, 1), end_date=utc(2026, 1, 1), jitter=0.25, timezone="+05:30"
    ),
    IntervalTrigger(weeks=1, days=2, start_date="2025-03-30T02:30", timezone="Europe/Berlin"),
    custom("0 9 * * 1-5"),
    custom("@weekly", timezone="America/New_York", jitter="10s"),
    custom("*/5 * * * *", timezone="CET-1CEST,M3.5.0,M10.5.0/3"),
    CronTrigger(second="*/10", minute="0-29", hour="9-17", day_of_week="mon-fri", month="jan,jul"),
    CronTrigger(year="2026-2030", day=1, month=1, minute=0, hour=0, timezone="UTC"),
    daily("04:00", start_date="2025-07-01T00:00Z", end_date="2025-08-01T00:00Z", timezone="UTC"),
    weekly("sun", "23:59:59", timezone="-03:00"),
    monthly(31, "09:00"),
    hourly(45, timezone="UTC"),
]


@pytest.mark.parametrize("trigger", SAMPLES, ids=lambda trigger: trigger.describe())
def test_to_dict_round_trip(trigger):
    data = json.loads(json.dumps(trigger.to_dict()))
    restored = trigger_from_dict(data)
    assert restored == trigger
    assert restored.to_dict() == trigger.to_dict()
    assert restored.describe() == trigger.describe()
    if getattr(trigger, "jitter", None) is None:
        assert restored.next_fire_time(None, NOW) == trigger.next_fire_time(None, NOW)


@pytest.mark.parametrize("trigger", SAMPLES, ids=lambda trigger: trigger.describe())
def test_pickle_and_copy(trigger):
    assert pickle.loads(pickle.dumps(trigger)) == trigger
    assert copy.deepcopy(trigger) == trigger


def test_to_dict_shapes():
    assert custom("0 9 * * 1-5", timezone="UTC").to_dict() == {
        "type": "cron",
        "expr": "0 9 * * 1-5",
        "timezone": "UTC",
    }
    assert daily("09:00").to_dict() == {
        "type": "cron",
        "second": "0",
        "minute": "0",
        "hour": "9",
        "day": "*",
        "month": "*",
        "day_of_week": "*",
        "year": "*",
    }
    assert every("2h32m", created_at=NOW, jitter=30, timezone="+02:00").to_dict() == {
        "type": "interval",
        "every": "2h32m",
        "start_date": "2025-06-01T16:32:00+02:00",
        "jitter": 30,
        "timezone": "+02:00",
    }
    assert once("2025-06-02T09:00Z").to_dict() == {
        "type": "date",
        "run_date": "2025-06-02T09:00:00+00:00",
    }


def test_equality_and_hash():
    assert daily("09:00", timezone="UTC") == CronTrigger(hour=9, minute=0, timezone="UTC")
    assert daily("09:00", timezone="UTC") != daily("09:00", timezone="Europe/Berlin")
    assert daily("09:00") != custom("0 9 * * *")  # same schedule, different written form
    assert len({daily("09:00"), daily("09:00"), hourly()}) == 2
    assert daily("09:00").__eq__(every("1h", created_at=NOW)) is NotImplemented


def test_rng_is_not_part_of_identity():
    assert daily("09:00", jitter=5, rng=random.Random(1)) == daily(
        "09:00", jitter=5, rng=random.Random(2)
    )


def test_repr_shows_the_persisted_form():
    assert repr(custom("0 9 * * *", timezone="UTC")) == (
        "CronTrigger({'type': 'cron', 'expr': '0 9 * * *', 'timezone': 'UTC'})"
    )
