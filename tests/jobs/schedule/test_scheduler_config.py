"""``config schedule`` sections of the daemon's UCI file -> schedule definitions."""
from __future__ import annotations

import pytest

from pineapple.jobs.schedule.scheduler import ScheduleConfigError, ScheduleDefinition, schedules_from_config
from pineapple.uci import parse_uci

EXAMPLE = """
config daemon 'main'
    option socket '/var/run/pineapple-jobd.sock'

config schedule 'nightly_update'
    option job 'update'
    option cron '0 4 * * *'
    option timezone 'Europe/Berlin'
    option misfire_grace '1h'

config schedule 'tools'
    option job 'install'
    option daily '03:30'
    list packages 'tcpdump'
    list packages 'nmap'
    option params '{"dest": "sd", "atomic": false}'
    option coalesce '0'
    option max_instances '2'
    option enabled 'no'

config schedule 'boot'
    option job 'update'
    option startup '1'
    option delay '2m'

config hook 'unrelated'
    option command 'true'
"""


def parse(text: str) -> list[ScheduleDefinition]:
    return schedules_from_config(parse_uci(text))


def one(body: str) -> ScheduleDefinition:
    [definition] = parse("config schedule 'x'\n    option job 'update'\n" + body)
    return definition


def test_the_example_config():
    nightly, tools, boot = parse(EXAMPLE)
    assert nightly == ScheduleDefinition("nightly_update", "update", {},
                                         {"type": "cron", "expr": "0 4 * * *", "timezone": "Europe/Berlin"},
                                         {"misfire_grace_time": "1h"})
    assert tools.params == {"dest": "sd", "atomic": False, "packages": ["tcpdump", "nmap"]}
    assert tools.trigger == {"type": "daily", "at": "03:30"}
    assert tools.options == {"coalesce": False, "max_instances": 2, "enabled": False}
    assert boot.trigger == {"type": "startup", "delay": "2m"}


@pytest.mark.parametrize(("body", "spec"), [
    ("option every '30m'", {"type": "interval", "every": "30m"}),
    ("option hourly '15'", {"type": "hourly", "minute": 15}),
    ("option daily '04:00'\noption jitter '5m'", {"type": "daily", "at": "04:00", "jitter": "5m"}),
    ("option weekly 'mon 04:00'", {"type": "weekly", "day": "mon", "at": "04:00"}),
    ("option at '2025-06-01T04:00'", {"type": "date", "run_date": "2025-06-01T04:00"}),
    ("option startup '1'", {"type": "startup"}),
    ("option startup '0'\noption cron '@daily'", {"type": "cron", "expr": "@daily"}),
])
def test_trigger_options(body, spec):
    assert one(body).trigger == spec


def test_a_single_package_option_is_split_on_spaces():
    assert one("option every '1d'\noption packages 'a b'").params == {"packages": ["a", "b"]}


@pytest.mark.parametrize(("text", "message"), [
    ("config schedule 'x'\n option job 'update'", "exactly one of"),
    ("config schedule 'x'\n option job 'update'\n option cron '@daily'\n option every '1h'", "found: cron, every"),
    ("config schedule 'x'\n option every '1h'", "missing option 'job'"),
    ("config schedule 'x'\n option job 'update'\n option every '1h'\n option colour 'red'", "unknown option 'colour'"),
    ("config schedule 'BadId'\n option job 'update'\n option every '1h'", "schedule id"),
    ("config schedule\n option job 'update'\n option every '1h'", "needs a name"),
    ("config schedule 'x'\n option job 'update'\n option cron '61 * * * *'", "invalid trigger"),
    ("config schedule 'x'\n option job 'update'\n option at 'tomorrow'", "invalid trigger"),
    ("config schedule 'x'\n option job 'update'\n option weekly 'monday'", "DAY HH:MM"),
    ("config schedule 'x'\n option job 'update'\n option hourly 'half'", "whole number"),
    ("config schedule 'x'\n option job 'update'\n option every '1h'\n option enabled 'maybe'", "not a boolean"),
    ("config schedule 'x'\n option job 'update'\n option every '1h'\n option max_instances '0'", "max_instances"),
    ("config schedule 'x'\n option job 'update'\n option every '1h'\n option misfire_grace 'soon'",
     "misfire_grace_time"),
    ("config schedule 'x'\n option job 'update'\n option every '1h'\n option params '[1]'", "JSON object"),
    ("config schedule 'x'\n option job 'update'\n option every '1h'\n option params '{'", "JSON object"),
    ("config schedule 'x'\n list job 'update'\n option every '1h'", "got a list"),
])
def test_bad_sections_are_refused_naming_the_schedule(text, message):
    with pytest.raises(ScheduleConfigError, match=message) as caught:
        parse(text)
    assert str(caught.value).startswith("schedule ")


def test_a_repeated_section_adds_to_the_first_as_in_libuci():
    [definition] = parse("config schedule 'x'\n option job 'update'\n option every '1h'\n"
                         "config schedule 'x'\n option every '2h'")
    assert (definition.job, definition.trigger) == ("update", {"type": "interval", "every": "2h"})


def test_no_schedule_sections():
    assert parse("config daemon 'main'\n option workers '2'") == []
