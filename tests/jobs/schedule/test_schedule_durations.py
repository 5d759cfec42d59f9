"""Human durations: parse_duration / format_duration / jitter coercion."""
from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pineapple.jobs.schedule import ScheduleError, format_duration, parse_duration
from pineapple.jobs.schedule.durations import coerce_jitter


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("2h32m", timedelta(hours=2, minutes=32)),
        ("1d", timedelta(days=1)),
        ("1w2d", timedelta(weeks=1, days=2)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("0.5s", timedelta(milliseconds=500)),
        (".5m", timedelta(seconds=30)),
        ("1w1d1h1m1s", timedelta(weeks=1, days=1, hours=1, minutes=1, seconds=1)),
        ("2h 30m", timedelta(hours=2, minutes=30)),
        ("  45s  ", timedelta(seconds=45)),
        ("90", timedelta(seconds=90)),
        ("2.5", timedelta(seconds=2.5)),
        (90, timedelta(seconds=90)),
        (1.5, timedelta(seconds=1.5)),
        (timedelta(minutes=3), timedelta(minutes=3)),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "duration: '' is empty; expected a duration like 90s, 30m, 2h32m, 1d"),
        ("   ", "duration: '   ' is empty; expected a duration like 90s, 30m, 2h32m, 1d"),
        ("5x", "duration: '5x' is not a duration like 90s, 30m, 2h32m, 1d"),
        ("m", "duration: 'm' is not a duration like 90s, 30m, 2h32m, 1d"),
        ("-3m", "duration: '-3m' must be positive"),
        ("-3", "duration: '-3' must be positive"),
        ("0", "duration: '0' must be greater than zero"),
        ("0s", "duration: '0s' must be greater than zero"),
        ("0h0m", "duration: '0h0m' must be greater than zero"),
        ("30m1h", "duration: '30m1h' is not a duration like 90s, 30m, 2h32m, 1d"),
        ("1h1h", "duration: '1h1h' is not a duration like 90s, 30m, 2h32m, 1d"),
        ("1M", "duration: '1M' is not a duration like 90s, 30m, 2h32m, 1d"),
        ("1..5h", "duration: '1..5h' is not a duration like 90s, 30m, 2h32m, 1d"),
        ("99999999999w", "duration: '99999999999w' is too long"),
        (0, "duration: 0 must be greater than zero"),
        (-5, "duration: -5 must be positive"),
        (float("nan"), "duration: nan is not a number of seconds"),
        (True, "duration: True is not a duration like 90s, 30m, 2h32m, 1d"),
        (None, "duration: None is not a duration like 90s, 30m, 2h32m, 1d"),
        (timedelta(0), "duration: datetime.timedelta(0) must be greater than zero"),
    ],
)
def test_parse_duration_errors(value, message):
    with pytest.raises(ScheduleError) as caught:
        parse_duration(value)
    assert str(caught.value) == message


def test_parse_duration_error_names_the_field():
    with pytest.raises(ScheduleError, match=r"^every: '5x' is not a duration"):
        parse_duration("5x", field="every")


def test_schedule_error_is_a_value_error():
    assert issubclass(ScheduleError, ValueError)


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(seconds=90), "1m30s"),
        (timedelta(hours=2, minutes=32), "2h32m"),
        (timedelta(weeks=1, days=2), "1w2d"),
        (timedelta(hours=1.5), "1h30m"),
        (timedelta(milliseconds=500), "0.5s"),
        (timedelta(seconds=1, microseconds=1), "1.000001s"),
        (timedelta(days=1), "1d"),
    ],
)
def test_format_duration(duration, text):
    assert format_duration(duration) == text


def test_format_duration_rejects_zero():
    with pytest.raises(ScheduleError):
        format_duration(timedelta(0))


@given(st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(weeks=10_000)))
def test_format_then_parse_round_trips(duration):
    assert parse_duration(format_duration(duration)) == duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, None), (0, None), (30, 30.0), (2.5, 2.5), ("2m", 120.0), (timedelta(seconds=5), 5.0)],
)
def test_coerce_jitter(value, seconds):
    assert coerce_jitter(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-5, "jitter: -5 must not be negative"),
        ("5x", "jitter: '5x' is not a duration like 90s, 30m, 2h32m, 1d"),
        (float("inf"), "jitter: inf is not a number of seconds"),
    ],
)
def test_coerce_jitter_errors(value, message):
    with pytest.raises(ScheduleError) as caught:
        coerce_jitter(value)
    assert str(caught.value) == message
