"""``pineapple-jobs fleet``: a roll-out with a live per-device table."""
from __future__ import annotations

import argparse
import sys

from .render import dump_json, table

EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE = 0, 1, 3


def run_fleet(args: argparse.Namespace) -> int:
    from ..mqtt.fleet import Rollout, summary_counts

    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else None
    rollout = Rollout(args.broker, args.port, {"job": args.fleet_action, "packages": args.packages},
                      devices=devices, timeout=args.wait_timeout, username=args.username,
                      password=args.password, ca_file=args.ca_file, root=args.root)
    view = _LiveTable(sys.stdout) if not args.json else None
    try:
        runs = rollout.run(view.show if view else None)
    except (ConnectionError, OSError) as exc:
        print(f"pineapple-jobs: {broker_error(exc, args.broker, args.port)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json:
        dump_json({name: {**vars(run), "outcome": run.outcome} for name, run in runs.items()})
    else:
        view.finish(runs)
        counts = summary_counts(runs)
        print("summary: " + (", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "no devices"))
    return EXIT_OK if runs and all(run.outcome == "succeeded" for run in runs.values()) else EXIT_FAILED


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
            key = (run.state, run.message)
            if self._seen.get(name) != key:
                self._seen[name] = key
                self.out.write(f"{name}: {run.state} {_percent(run.fraction)} {run.message}".rstrip() + "\n")
        self.out.flush()

    def finish(self, runs: dict) -> None:
        if self.tty:
            self._redraw(runs)
        rows = [[name, run.outcome, run.error_code or "", (run.error or "").split("\n")[0][:60]]
                for name, run in sorted(runs.items())]
        if not self.tty:
            self.out.write(table(rows, ["DEVICE", "OUTCOME", "CODE", "ERROR"]) + "\n")

    def _redraw(self, runs: dict) -> None:
        rows = [[name, run.state, _percent(run.fraction), run.message[:40], run.error_code or ""]
                for name, run in sorted(runs.items())]
        text = table(rows, ["DEVICE", "STATE", "PROGRESS", "STEP", "CODE"])
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
        self.out.write(text + "\n")
        self.out.flush()
        self._drawn = text.count("\n") + 1


def _percent(fraction) -> str:
    return "-" if fraction is None else f"{fraction * 100:.0f}%"
