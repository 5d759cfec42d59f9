"""Property tests: cron results checked against a brute-force oracle built
from the generated values (not from the parser), interval grid invariants
and to_dict round trips."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

try:  # the oracle: the standard library's zones where it has them (3.9+), ours otherwise
    from zoneinfo import ZoneInfo as oracle_zone
except ImportError:
    from pineapple.jobs.schedule.zones import named_zone as oracle_zone

from pineapple.jobs.schedule import (
    CronTrigger,
    IntervalTrigger,
    ScheduleError,
    trigger_from_dict,
)

UTC = timezone.utc
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # DST shift of 30 minutes
    "Asia/Kolkata",  # +05:30, no DST
]
# 2025 DST transitions (zone, instant): spring forward and fall back
DST_EVENTS = [
    ("Europe/Berlin", datetime(2025, 3, 30, 1, tzinfo=UTC)),
    ("Europe/Berlin", datetime(2025, 10, 26, 1, tzinfo=UTC)),
    ("America/New_York", datetime(2025, 3, 9, 7, tzinfo=UTC)),
    ("America/New_York", datetime(2025, 11, 2, 6, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2025, 4, 5, 15, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2025, 10, 4, 15, 30, tzinfo=UTC)),
]
TRANSITIONS = [instant for _, instant in DST_EVENTS]
MINUTE = timedelta(minutes=1)
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def field(low: int, high: int) -> st.SearchStrategy[tuple[str, frozenset[int]]]:
    """A cron field text together with the values it must match."""

    def stepped(args: tuple[int, int, int]) -> tuple[str, frozenset[int]]:
        first, last, step = args
        first, last = min(first, last), max(first, last)
        return f"{first}-{last}/{step}", frozenset(range(first, last + 1, step))

    return st.one_of(
        st.just(("*", frozenset(range(low, high + 1)))),
        st.integers(low, high).map(lambda n: (str(n), frozenset({n}))),
        st.integers(1, high - low + 1).map(
            lambda step: (f"*/{step}", frozenset(range(low, high + 1, step)))
        ),
        st.tuples(st.integers(low, high), st.integers(low, high), st.integers(1, 12)).map(stepped),
        st.lists(st.integers(low, high), min_size=1, max_size=4).map(
            lambda values: (",".join(map(str, values)), frozenset(values))
        ),
    )


cron_fields = st.fixed_dictionaries(
    {
        "minute": field(0, 59),
        "hour": field(0, 23),
        "day": field(1, 31),
        "month": field(1, 12),
        "day_of_week": field(0, 6),
    }
)


def near_transitions(seconds: int) -> st.SearchStrategy[datetime]:
    return st.tuples(st.sampled_from(TRANSITIONS), st.integers(-seconds, seconds)).map(
        lambda pair: pair[0] + timedelta(seconds=pair[1])
    )


nows = st.one_of(
    st.datetimes(datetime(2024, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
    near_transitions(2 * 86400),
    near_transitions(3 * 3600),  # the few hours where gaps and overlaps bite
)


def matches(wall: datetime, fields: dict[str, tuple[str, frozenset[int]]]) -> bool:
    """Classic cron matching of a naive wall time, at second 0."""
    if wall.second or wall.microsecond:
        return False
    if wall.minute not in fields["minute"][1] or wall.hour not in fields["hour"][1]:
        return False
    if wall.month not in fields["month"][1]:
        return False
    day_text, days = fields["day"]
    weekday_text, weekdays = fields["day_of_week"]
    day_ok, weekday_ok = wall.day in days, wall.weekday() in weekdays
    if day_text.startswith("*") or weekday_text.startswith("*"):
        return day_ok and weekday_ok
    return day_ok or weekday_ok


def in_second_pass(local: datetime) -> bool:
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def build(fields, zone_name):
    try:
        return CronTrigger(timezone=zone_name, **{name: text for name, (text, _) in fields.items()})
    except ScheduleError:
        assume(False)


@PROPERTY_SETTINGS
@given(cron_fields, st.sampled_from(ZONES), nows)
def test_cron_next_fire_time_is_the_first_match_after_now(fields, zone_name, now):
    check_against_oracle(fields, zone_name, now)


def check_against_oracle(
    fields, zone_name: str, now: datetime, walk_until: datetime | None = None
) -> None:
    """The fire time is after now, matches (or ends a gap holding a match),
    is never a repeated wall time, and no real minute before it matches
    (checked up to ``walk_until`` or two days)."""
    trigger = build(fields, zone_name)
    zone = oracle_zone(zone_name)
    fire = trigger.next_fire_time(None, now)
    assert fire is not None
    fire_utc = fire.astimezone(UTC)
    assert fire_utc > now
    local = fire_utc.astimezone(zone)
    assert not in_second_pass(local)  # never on the repeat of a wall time
    if not matches(local.replace(tzinfo=None, fold=0), fields):
        # only allowed at the end of a spring-forward gap that holds a match
        before = (fire_utc - MINUTE).astimezone(zone)
        gap = local.utcoffset() - before.utcoffset()
        assert gap > timedelta(0)
        gap_walls = [
            local.replace(tzinfo=None) - gap + step * MINUTE for step in range(gap // MINUTE)
        ]
        assert any(matches(wall, fields) for wall in gap_walls)
    assert_no_earlier_match(fields, zone, now, fire_utc, walk_until or now + timedelta(days=2))


def assert_no_earlier_match(
    fields, zone, now: datetime, fire_utc: datetime, until: datetime
) -> None:
    """Walk every real minute between now and the fire time (up to ``until``)."""
    moment = now.replace(second=0, microsecond=0) + MINUTE
    previous_offset = (moment - MINUTE).astimezone(zone).utcoffset()
    while moment < min(fire_utc, until):
        local = moment.astimezone(zone)
        if local.utcoffset() > previous_offset:  # spring-forward gap ends at `moment`
            skipped = local.utcoffset() - previous_offset
            walls = [
                local.replace(tzinfo=None) - skipped + i * MINUTE for i in range(skipped // MINUTE)
            ]
            assert not any(matches(wall, fields) for wall in walls), f"gap match before {fire_utc}"
        if not in_second_pass(local):
            assert not matches(local.replace(tzinfo=None, fold=0), fields), f"missed {moment}"
        previous_offset = local.utcoffset()
        moment += MINUTE


@PROPERTY_SETTINGS
@given(
    st.fixed_dictionaries(
        {
            "minute": field(0, 59),
            "hour": st.one_of(st.just(("*", frozenset(range(24)))), field(0, 23)),
            "day": st.just(("*", frozenset(range(1, 32)))),
            "month": st.just(("*", frozenset(range(1, 13)))),
            "day_of_week": st.just(("*", frozenset(range(7)))),
        }
    ),
    st.sampled_from(DST_EVENTS),
    st.integers(-3 * 3600, 3 * 3600),
)
def test_cron_daily_patterns_around_dst_transitions(fields, event, offset_seconds):
    """The same oracle, concentrated on the hours around DST transitions."""
    zone_name, transition = event
    check_against_oracle(fields, zone_name, transition + timedelta(seconds=offset_seconds))


SWEEP_MINUTES = ["0", "30", "45", "*/15", "*/20", "*"]
SWEEP_HOURS = ["*", "0", "1", "2", "3", "1-3"]


def test_cron_sweep_around_every_dst_transition():
    """Deterministic companion of the property tests: every pattern from
    every 20th minute of the six hours around each transition (the walk for
    earlier matches stops 4 hours after the transition; the calendar beyond
    is the random tests' job)."""
    everything = {
        "day": ("*", frozenset(range(1, 32))),
        "month": ("*", frozenset(range(1, 13))),
        "day_of_week": ("*", frozenset(range(7))),
    }
    for zone_name, transition in DST_EVENTS:
        for minute in SWEEP_MINUTES:
            for hour in SWEEP_HOURS:
                fields = {
                    "minute": (minute, minute_values(minute, 59)),
                    "hour": (hour, minute_values(hour, 23)),
                    **everything,
                }
                for step in range(-9, 10):
                    now = transition + step * 20 * MINUTE
                    check_against_oracle(fields, zone_name, now, transition + 4 * 60 * MINUTE)


def minute_values(text: str, high: int) -> frozenset[int]:
    if text == "*":
        return frozenset(range(high + 1))
    if text.startswith("*/"):
        return frozenset(range(0, high + 1, int(text[2:])))
    if "-" in text:
        first, last = map(int, text.split("-"))
        return frozenset(range(first, last + 1))
    return frozenset({int(text)})


@PROPERTY_SETTINGS
@given(cron_fields, st.sampled_from(ZONES), nows)
def test_cron_chain_strictly_increases(fields, zone_name, now):
    trigger = build(fields, zone_name)
    previous = None
    for _ in range(5):
        fire = trigger.next_fire_time(previous, now)
        assert fire is not None
        assert fire.astimezone(UTC) > now
        if previous is not None:
            assert fire.astimezone(UTC) > previous.astimezone(UTC)
        previous, now = fire, fire.astimezone(UTC)


@PROPERTY_SETTINGS
@given(
    st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=30)),
    st.datetimes(datetime(2024, 1, 1), datetime(2026, 1, 1), timezones=st.just(UTC)),
    st.datetimes(datetime(2023, 1, 1), datetime(2027, 1, 1), timezones=st.just(UTC)),
    st.sampled_from(ZONES),
)
def test_interval_fires_on_the_first_grid_point_after_now(interval, start, now, zone_name):
    trigger = IntervalTrigger(
        seconds=interval.total_seconds(), start_date=start, timezone=zone_name
    )
    fire = trigger.next_fire_time(None, now).astimezone(UTC)
    assert fire > now
    assert (fire - start) % trigger.interval == timedelta(0)
    assert fire == start or fire - trigger.interval <= now


zones_or_local = st.one_of(st.none(), st.sampled_from([*ZONES, "+05:30", "-08:00"]))
options = st.fixed_dictionaries(
    {},
    optional={
        "start_date": st.datetimes(
            datetime(2024, 1, 1), datetime(2025, 1, 1), timezones=st.just(UTC)
        ),
        "end_date": st.datetimes(
            datetime(2025, 1, 2), datetime(2030, 1, 1), timezones=st.just(UTC)
        ),
        "jitter": st.one_of(st.integers(1, 3600), st.floats(0.5, 60)),
    },
)


@PROPERTY_SETTINGS
@given(cron_fields, zones_or_local, options)
def test_cron_round_trips_through_json(fields, zone_name, extra):
    try:
        trigger = CronTrigger(
            timezone=zone_name, **{name: text for name, (text, _) in fields.items()}, **extra
        )
    except ScheduleError:
        assume(False)
    restored = trigger_from_dict(json.loads(json.dumps(trigger.to_dict())))
    assert restored == trigger
    assert restored.describe() == trigger.describe()


@PROPERTY_SETTINGS
@given(
    cron_fields.map(
        lambda fields: " ".join(fields[name][0] for name in ("minute", "hour", "day", "month"))
    ),
    st.sampled_from(["*", "0", "7", "1-5", "mon-fri", "sat,sun", "*/2", "5-7"]),
    zones_or_local,
)
def test_crontab_round_trips_through_json(first_four, weekday, zone_name):
    try:
        trigger = CronTrigger.from_crontab(f"{first_four} {weekday}", timezone=zone_name)
    except ScheduleError:
        assume(False)
    restored = trigger_from_dict(json.loads(json.dumps(trigger.to_dict())))
    assert restored == trigger
    now = datetime(2025, 6, 1, tzinfo=UTC)
    assert restored.next_fire_time(None, now) == trigger.next_fire_time(None, now)


@PROPERTY_SETTINGS
@given(
    st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(weeks=520)),
    st.datetimes(datetime(2024, 1, 1), datetime(2026, 1, 1), timezones=st.just(UTC)),
    zones_or_local,
    options.filter(lambda extra: "start_date" not in extra),
)
def test_interval_round_trips_through_json(interval, start, zone_name, extra):
    try:
        trigger = IntervalTrigger(
            days=interval.days,
            seconds=interval.seconds + interval.microseconds / 1_000_000,
            start_date=start,
            timezone=zone_name,
            **extra,
        )
    except ScheduleError:
        assume(False)
    restored = trigger_from_dict(json.loads(json.dumps(trigger.to_dict())))
    assert restored == trigger
    assert restored.interval == interval
    assert restored.start_date.astimezone(UTC) == start
