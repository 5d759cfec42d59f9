"""``pineapple-jobs schedule ...`` against the in-process service: the
parser from ``register_schedule_commands`` and ``run_schedule_command``."""
from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone

import pytest

from pineapple.api.protocol import ApiError
from pineapple.cli.schedule import add_request, register_schedule_commands, run_schedule_command
from pineapple.jobs import FakeClock

from .harness import ScheduleService, install_schedule_handlers

START = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc).timestamp()


def parser() -> argparse.ArgumentParser:
    """The shape of pineapple-jobs' parser: --json on top, then commands."""
    top = argparse.ArgumentParser(prog="pineapple-jobs")
    top.add_argument("--json", action="store_true")
    sub = top.add_subparsers(dest="command", required=True)
    register_schedule_commands(sub)
    return top


def parse(*argv: str) -> argparse.Namespace:
    return parser().parse_args(["schedule", *argv])


@pytest.fixture
def clock():
    return FakeClock(START)


@pytest.fixture
def client(tmp_path, monkeypatch, clock):
    install_schedule_handlers(monkeypatch)
    service = ScheduleService(tmp_path / "state", clock=clock).start()
    with service.client() as c:
        yield c
    service.close()


def run(client, capsys, *argv: str, json_output: bool = False) -> tuple[int, str]:
    args = parser().parse_args([*(["--json"] if json_output else []), "schedule", *argv])
    code = run_schedule_command(client, args)
    return code, capsys.readouterr().out


# --------------------------------------------------------------- requests
def test_add_flags_become_the_request():
    args = parse("add", "tools", "--job", "install", "--daily", "03:30", "--timezone", "UTC", "--jitter", "30",
                 "--package", "tcpdump", "--package", "nmap", "--param", "dest=sd", "--param", "atomic=false",
                 "--no-coalesce", "--misfire-grace", "10m", "--max-instances", "2", "--paused", "--replace")
    assert add_request(args) == {
        "schedule_id": "tools", "job": "install",
        "params": {"dest": "sd", "atomic": False, "packages": ["tcpdump", "nmap"]},
        "trigger": {"type": "daily", "at": "03:30", "timezone": "UTC", "jitter": 30.0},
        "replace_existing": True, "max_instances": 2, "coalesce": False, "enabled": False,
        "misfire_grace_time": "10m"}


@pytest.mark.parametrize(("flags", "spec"), [
    (["--cron", "0 4 * * *"], {"type": "cron", "expr": "0 4 * * *"}),
    (["--every", "30m"], {"type": "interval", "every": "30m"}),
    (["--hourly", "15"], {"type": "hourly", "minute": 15}),
    (["--weekly", "mon@04:00"], {"type": "weekly", "day": "mon", "at": "04:00"}),
    (["--at", "2025-06-01T04:00"], {"type": "date", "run_date": "2025-06-01T04:00"}),
    (["--startup"], {"type": "startup"}),
    (["--startup", "--delay", "2m"], {"type": "startup", "delay": "2m"}),
    (["--trigger", '{"type": "monthly", "day": 1, "at": "04:00"}'], {"type": "monthly", "day": 1, "at": "04:00"}),
])
def test_trigger_flags(flags, spec):
    assert add_request(parse("add", "x", "--job", "update", *flags))["trigger"] == spec


def test_exactly_one_trigger_flag_is_required():
    with pytest.raises(SystemExit):
        parse("add", "x", "--job", "update")
    with pytest.raises(SystemExit):
        parse("add", "x", "--job", "update", "--cron", "@daily", "--every", "1h")


@pytest.mark.parametrize("flags", [["--weekly", "monday"], ["--every", "1h", "--delay", "1m"],
                                   ["--trigger", "[1]"], ["--every", "1h", "--param", "novalue"]])
def test_bad_flags_exit_2(client, capsys, flags):
    code = run_schedule_command(client, parse("add", "x", "--job", "echo", *flags))
    assert code == 2
    assert "pineapple-jobs:" in capsys.readouterr().err


# ------------------------------------------------------------- round trip
def test_add_list_show_pause_resume_run_remove(client, capsys):
    code, out = run(client, capsys, "add", "nightly", "--job", "install", "--package", "tcpdump", "--cron",
                    "0 4 * * *", "--timezone", "UTC")
    assert code == 0 and out.startswith("added nightly: install cron") and "next run 2025-06-0" in out
    code, out = run(client, capsys, "list")
    assert out.splitlines()[0].split() == ["ID", "JOB", "WHEN", "NEXT", "RUN", "LAST", "RUN", "RUNS", "MISSED",
                                           "SOURCE"]
    assert "nightly" in out and out.rstrip().endswith("1 schedule(s)")
    code, out = run(client, capsys, "show", "nightly")
    assert '"packages": ["tcpdump"]' in out and "coalesce on" in out
    assert run(client, capsys, "pause", "nightly")[1] == "paused nightly\n"
    assert "- (paused)" in run(client, capsys, "list")[1]
    assert run(client, capsys, "resume", "nightly")[1].startswith("resumed nightly; next run 2025-06-0")
    code, out = run(client, capsys, "run", "nightly")
    assert code == 0 and len(out.strip()) == 36  # the job id
    assert run(client, capsys, "remove", "nightly")[1] == "removed nightly\n"


def test_json_output(client, capsys):
    code, out = run(client, capsys, "add", "boot", "--job", "echo", "--startup", json_output=True)
    assert json.loads(out)["state"] == "startup"
    code, out = run(client, capsys, "list", json_output=True)
    assert [s["schedule_id"] for s in json.loads(out)] == ["boot"]
    code, out = run(client, capsys, "run", "boot", json_output=True)
    assert set(json.loads(out)) == {"schedule_id", "job_id", "duplicate"}


def test_daemon_errors_reach_the_caller_with_their_code(client, capsys):
    with pytest.raises(ApiError) as caught:
        run(client, capsys, "show", "nope")
    assert caught.value.code == "unknown_schedule"
    with pytest.raises(ApiError) as caught:
        run(client, capsys, "add", "x", "--job", "echo", "--cron", "99 * * * *")
    assert caught.value.code == "invalid_trigger"
