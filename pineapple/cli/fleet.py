"""``pineapple-jobs fleet``: durable roll-outs to many devices (docs/mqtt.md).

``install`` / ``uninstall`` create a roll-out and follow it with a live
per-device table; ``status ID`` shows (and with ``--wait-timeout`` follows)
a roll-out at any later time; ``cancel ID`` stops it reaching the devices
that have not applied it yet.
"""
from __future__ import annotations

import argparse
import os
import sys

from .render import dump_json, table

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_PENDING = 0, 1, 2, 3, 4
KEY_ENV = "PINEAPPLE_COMMAND_KEY"


def run_fleet(args: argparse.Namespace) -> int:
    from ..mqtt.fleet import Fleet

    try:
        key = command_key(args)
    except (OSError, ValueError) as exc:
        print(f"pineapple-jobs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    fleet = Fleet(args.broker, args.port, username=args.username, password=args.password, ca_file=args.ca_file,
                  cert_file=args.cert_file, key_file=args.key_file, root=args.root, command_key=key)
    try:
        with fleet:
            if args.fleet_action in ("install", "uninstall"):
                return _roll_out(fleet, args)
            if args.fleet_action == "status":
                fleet.status(args.rollout_id)
                return _report(args, args.rollout_id, _follow(fleet, args))
            return _cancel(fleet, args)
    except (ConnectionError, OSError) as exc:
        print(f"pineapple-jobs: {broker_error(exc, args.broker, args.port)}", file=sys.stderr)
        return EXIT_UNREACHABLE


def command_key(args: argparse.Namespace) -> bytes | None:
    """The signing key: --command-key-file, else $PINEAPPLE_COMMAND_KEY, else none (unsigned)."""
    from ..mqtt.signing import load_key

    if args.command_key_file:
        with open(args.command_key_file) as file:
            text = file.read()
    else:
        text = os.environ.get(KEY_ENV, "")
    if text.strip() and len(text.strip()) < 16:
        raise ValueError("the command key must be at least 16 characters (the devices' mqtt.command_key)")
    return load_key(text) if text.strip() else None


def _roll_out(fleet, args: argparse.Namespace) -> int:
    job = {"job": args.fleet_action, "packages": args.packages}
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else fleet.discover()
    rollout_id = fleet.create(job, devices)
    if not args.json:
        print(f"roll-out {rollout_id}: {args.fleet_action} {' '.join(args.packages)} on {len(devices)} device(s)")
    return _report(args, rollout_id, _follow(fleet, args))


def _follow(fleet, args: argparse.Namespace) -> dict:
    view = _LiveTable(sys.stdout) if not args.json and args.wait_timeout > 0 else None
    return fleet.follow(args.wait_timeout, view.show if view else None)


def _cancel(fleet, args: argparse.Namespace) -> int:
    cancelled, runs = fleet.cancel(args.rollout_id)
    if not runs:
        print(f"pineapple-jobs: no roll-out {args.rollout_id} on the broker", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        dump_json({"rollout": args.rollout_id, "cancelled": cancelled,
                   "devices": {name: run.to_dict() for name, run in runs.items()}})
        return EXIT_OK
    print(f"roll-out {args.rollout_id}: cancelled for {len(cancelled)} device(s) that had not applied it"
          + (f": {', '.join(cancelled)}" if cancelled else ""))
    started = [f"{name} ({run.outcome})" for name, run in runs.items() if name not in cancelled
               and run.outcome != "cancelled"]
    if started:
        print(f"already applied (left alone): {', '.join(started)}")
    return EXIT_OK


def _report(args: argparse.Namespace, rollout_id: str, runs: dict) -> int:
    from ..mqtt.fleet import summary_counts

    if args.json:
        dump_json({"rollout": rollout_id, "devices": {name: run.to_dict() for name, run in runs.items()}})
    else:
        _LiveTable(sys.stdout).finish(runs)
        counts = summary_counts(runs)
        print(f"roll-out {rollout_id}: "
              + (", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "no devices"))
        if any(not run.final for run in runs.values()):
            print(f"devices not done apply it when they come online; see `pineapple-jobs fleet status {rollout_id} "
                  f"--broker {args.broker}`")
    if not runs:
        return EXIT_FAILED
    if all(run.outcome == "succeeded" for run in runs.values()):
        return EXIT_OK
    return EXIT_PENDING if all(run.outcome == "succeeded" or not run.final for run in runs.values()) \
        else EXIT_FAILED


def broker_error(exc: Exception, host: str, port: int) -> str:
    """The error naming the broker: "[Errno 111] Connection refused" alone does not say which."""
    where = f"{host}:{port}"
    text = str(exc) if where in str(exc) else f"cannot reach the MQTT broker at {where}: " \
        f"{getattr(exc, 'strerror', None) or exc}"
    return f"{text} (is mosquitto running there? --broker HOST --port PORT)"


class _LiveTable:
    """Redraws the per-device table on a terminal; prints changes otherwise."""

    def __init__(self, out) -> None:
        self.out = out
        self.tty = out.isatty()
        self._drawn = 0
        self._seen: dict[str, tuple] = {}

    def show(self, runs: dict) -> None:
        if self.tty:
            self._redraw(runs)
            return
        for name, run in sorted(runs.items()):
            key = (run.outcome, run.message)
            if self._seen.get(name) != key:
                self._seen[name] = key
                self.out.write(f"{name}: {run.outcome} {_percent(run.fraction)} {run.message}".rstrip() + "\n")
        self.out.flush()

    def finish(self, runs: dict) -> None:
        """The final table: every device's outcome (pending: not applied yet)."""
        rows = [[name, run.outcome, run.job_id or "", run.error_code or "", (run.error or "").split("\n")[0][:60]]
                for name, run in sorted(runs.items())]
        self.out.write(table(rows, ["DEVICE", "OUTCOME", "JOB", "CODE", "ERROR"]) + "\n")

    def _redraw(self, runs: dict) -> None:
        rows = [[name, run.outcome, _percent(run.fraction), run.message[:40], run.error_code or ""]
                for name, run in sorted(runs.items())]
        text = table(rows, ["DEVICE", "STATE", "PROGRESS", "STEP", "CODE"])
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
        self.out.write(text + "\n")
        self.out.flush()
        self._drawn = text.count("\n") + 1


def _percent(fraction) -> str:
    return "-" if fraction is None else f"{fraction * 100:.0f}%"
