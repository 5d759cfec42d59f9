"""``pineapple-jobs schedule ...``: recurring and delayed jobs.

    pineapple-jobs schedule add nightly --job update --cron "0 4 * * *"
    pineapple-jobs schedule add tools --job install --package tcpdump --daily 03:30 --misfire-grace 1h
    pineapple-jobs schedule list
    pineapple-jobs schedule show nightly
    pineapple-jobs schedule pause|resume|remove|run nightly

Wiring (cli/main.py and cli/commands.py): ``register_schedule_commands(sub)``
in ``build_parser`` and ``COMMANDS["schedule"] = run_schedule_command``.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from ..api.client import JobClient
from ..api.protocol import ApiError
from .render import dump_json, table

EXIT_OK, EXIT_USAGE = 0, 2


def register_schedule_commands(subparsers: Any) -> None:
    """Add the ``schedule`` command and its actions to the CLI's subparsers."""
    schedule = subparsers.add_parser("schedule", help="recurring and delayed jobs",
                                     description="Run jobs on a schedule inside the daemon (see docs/schedules.md).")
    actions = schedule.add_subparsers(dest="schedule_action", required=True, metavar="ACTION")
    _add_parser(actions)
    actions.add_parser("list", help="list schedules")
    for name, text in (("show", "show one schedule"), ("pause", "stop firing until resumed"),
                       ("resume", "fire again (next run computed from now)"), ("remove", "delete a schedule"),
                       ("run", "submit the schedule's job now")):
        actions.add_parser(name, help=text).add_argument("schedule_id", metavar="ID")


def _add_parser(actions: Any) -> None:
    add = actions.add_parser("add", help="add a schedule", description="Add a schedule: a job and when it runs.")
    add.add_argument("schedule_id", metavar="ID", help="a-z 0-9 _ . - (at most 64)")
    add.add_argument("--job", required=True, help="job type, e.g. update, install, uninstall")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", metavar="EXPR", help='crontab line, e.g. "0 4 * * *"')
    when.add_argument("--every", metavar="DURATION", help="interval, e.g. 30m, 2h, 1d")
    when.add_argument("--hourly", metavar="MINUTE", type=int, help="every hour at this minute")
    when.add_argument("--daily", metavar="HH:MM", help="every day at this time")
    when.add_argument("--weekly", metavar="DAY@HH:MM", help='every week, e.g. mon@04:00 or "mon 04:00"')
    when.add_argument("--at", metavar="ISO", help="once, e.g. 2025-06-01T04:00")
    when.add_argument("--startup", action="store_true", help="each time the daemon starts")
    when.add_argument("--trigger", metavar="JSON", help="a trigger spec object (docs/schedules.md)")
    add.add_argument("--timezone", help="time zone of the trigger (default: the router's)")
    add.add_argument("--jitter", metavar="DURATION", help="delay each run by up to this much, at random")
    add.add_argument("--delay", metavar="DURATION", help="with --startup: wait this long after start")
    add.add_argument("--package", action="append", dest="packages", metavar="PKG",
                     help="package for install/uninstall (repeatable)")
    add.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                     help="job parameter; VALUE is JSON if it parses, else a string (repeatable)")
    add.add_argument("--no-coalesce", action="store_true", help="run once per missed fire time, not once in all")
    add.add_argument("--misfire-grace", metavar="SECONDS", help="skip runs later than this (seconds or 10m)")
    add.add_argument("--max-instances", type=int, metavar="N", help="jobs of this schedule active at once (default 1)")
    add.add_argument("--paused", action="store_true", help="add it paused")
    add.add_argument("--replace", action="store_true", help="replace a schedule with the same ID")


def run_schedule_command(client: JobClient, args: argparse.Namespace) -> int:
    """Run ``pineapple-jobs schedule ACTION``; returns the exit code."""
    return _ACTIONS[args.schedule_action](client, args)


# ------------------------------------------------------------------ actions
def add(client: JobClient, args: argparse.Namespace) -> int:
    try:
        request = add_request(args)
    except ValueError as exc:
        print(f"pineapple-jobs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        answer = client.request("schedule_add", **request)
    except ApiError as exc:
        raise ApiError(flag_hint(exc.message), exc.code) from None
    return _show(args, answer, lambda a: f"added {a['schedule_id']}: {a['job']} {a['description']}; "
                                         f"next run {_when(a['next_run_epoch'], a['state'])}")


def flag_hint(message: str) -> str:
    """The daemon names a job parameter ("missing parameter 'packages'"); say which flag gives it."""
    match = re.search(r"parameter '([^']+)'", message)
    if match is None:
        return message
    name = match.group(1)
    flag = "--package PKG (repeatable)" if name == "packages" else f"--param {name}=VALUE"
    return f"{message}: give it with {flag}"


def add_request(args: argparse.Namespace) -> dict:
    """The ``schedule_add`` request fields of ``schedule add`` arguments."""
    request: dict[str, Any] = {"schedule_id": args.schedule_id, "job": args.job, "params": _params(args),
                               "trigger": trigger_spec(args), "replace_existing": args.replace or None,
                               "max_instances": args.max_instances}
    if args.no_coalesce:
        request["coalesce"] = False
    if args.paused:
        request["enabled"] = False
    if args.misfire_grace is not None:
        request["misfire_grace_time"] = _number_or_text(args.misfire_grace)
    return request


def trigger_spec(args: argparse.Namespace) -> dict:
    """The trigger spec the flags describe (``ValueError`` for a bad one)."""
    if args.delay is not None and not args.startup:
        raise ValueError("--delay only goes with --startup")
    if args.trigger is not None:
        spec = _json_object(args.trigger, "--trigger")
    elif args.startup:
        spec = {"type": "startup", "delay": args.delay}
    else:
        spec = _simple_spec(args)
    extras = {"timezone": args.timezone, "jitter": _number_or_text(args.jitter)}
    spec.update({key: value for key, value in extras.items() if value is not None})
    return {key: value for key, value in spec.items() if value is not None}


def _simple_spec(args: argparse.Namespace) -> dict:
    if args.cron is not None:
        return {"type": "cron", "expr": args.cron}
    if args.every is not None:
        return {"type": "interval", "every": args.every}
    if args.hourly is not None:
        return {"type": "hourly", "minute": args.hourly}
    if args.daily is not None:
        return {"type": "daily", "at": args.daily}
    if args.weekly is not None:
        # "mon@04:00", or "mon 04:00" as a UCI `option weekly` has it
        day, sep, at = args.weekly.strip().replace("@", " ", 1).partition(" ")
        if not sep or not day or not at.strip():
            raise ValueError(f"--weekly expects DAY@HH:MM or \"DAY HH:MM\", e.g. mon@04:00, got {args.weekly!r}")
        return {"type": "weekly", "day": day, "at": at.strip()}
    return {"type": "date", "run_date": args.at}


def _params(args: argparse.Namespace) -> dict:
    params: dict[str, Any] = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param expects KEY=VALUE, got {item!r}")
        params[key] = _json_or_text(value)
    if args.packages:
        params["packages"] = list(args.packages)
    return params


def list_schedules(client: JobClient, args: argparse.Namespace) -> int:
    schedules = client.request("schedule_list")["schedules"]
    if args.json:
        dump_json(schedules, sys.stdout)
        return EXIT_OK
    rows = [[s["schedule_id"], s["job"], s["description"], _when(s["next_run_epoch"], s["state"]),
             _time(s["last_run_epoch"]), str(s["runs"]), str(s["missed"]), s["source"]] for s in schedules]
    print(table(rows, ["ID", "JOB", "WHEN", "NEXT RUN", "LAST RUN", "RUNS", "MISSED", "SOURCE"]))
    print(f"{len(rows)} schedule(s)")
    return EXIT_OK


def show(client: JobClient, args: argparse.Namespace) -> int:
    return _show(args, client.request("schedule_get", schedule_id=args.schedule_id), describe_schedule)


def pause(client: JobClient, args: argparse.Namespace) -> int:
    answer = client.request("schedule_pause", schedule_id=args.schedule_id)
    return _show(args, answer, lambda a: f"paused {a['schedule_id']}")


def resume(client: JobClient, args: argparse.Namespace) -> int:
    answer = client.request("schedule_resume", schedule_id=args.schedule_id)
    return _show(args, answer, lambda a: f"resumed {a['schedule_id']}; next run "
                                         f"{_when(a['next_run_epoch'], a['state'])}")


def remove(client: JobClient, args: argparse.Namespace) -> int:
    answer = client.request("schedule_remove", schedule_id=args.schedule_id)
    return _show(args, answer, lambda a: f"removed {a['schedule_id']}")


def run(client: JobClient, args: argparse.Namespace) -> int:
    answer = client.request("schedule_run", schedule_id=args.schedule_id)
    note = " (already queued or running: same job)" if answer.get("duplicate") else ""
    return _show(args, answer, lambda a: f"{a['job_id']}{note}")


# ------------------------------------------------------------------ output
def describe_schedule(s: dict) -> str:
    """Human lines about one schedule (as ``schedule_get`` answers it)."""
    options = s["options"]
    grace = options["misfire_grace_time"]
    lines = [f"schedule {s['schedule_id']}  ({s['source']}, {s['state']})",
             f"  job:      {s['job']} {json.dumps(s['params'], ensure_ascii=False)}",
             f"  when:     {s['description']}  {json.dumps(s['trigger'], ensure_ascii=False)}",
             f"  next run: {_when(s['next_run_epoch'], s['state'])}",
             f"  last run: {_time(s['last_run_epoch'])}  job {s['last_job_id'] or '-'}",
             f"  runs {s['runs']}, missed {s['missed']}, skipped {s['skipped']}; "
             f"active jobs: {', '.join(s['active_jobs']) or 'none'}",
             f"  options:  coalesce {'on' if options['coalesce'] else 'off'}, max_instances "
             f"{options['max_instances']}, misfire grace {'none' if grace is None else f'{grace:g}s'}"]
    if s.get("last_error"):
        lines.append(f"  last error: {s['last_error']}")
    return "\n".join(lines)


def _show(args: argparse.Namespace, answer: Any, human: Callable[[Any], str]) -> int:
    if args.json:
        dump_json(answer, sys.stdout)
    else:
        print(human(answer))
    return EXIT_OK


def _when(epoch: float | None, state: str) -> str:
    if epoch is not None:
        return _time(epoch)
    return {"paused": "- (paused)", "startup": "at next start-up", "finished": "- (finished)"}.get(state, "-")


def _time(epoch: float | None) -> str:
    # Local time of this machine: the CLI runs on the router beside the daemon.
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _json_object(text: str, flag: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{flag}: not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag}: expected a JSON object")
    return value


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _number_or_text(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


_ACTIONS: dict[str, Callable[[JobClient, argparse.Namespace], int]] = {
    "add": add, "list": list_schedules, "show": show, "pause": pause, "resume": resume,
    "remove": remove, "run": run,
}
