"""``pineapple-jobs``: install, remove and watch opkg jobs of pineapple-jobd."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3

EPILOG = """\
exit codes:
  0  success (the job succeeded, or the request was answered)
  1  the job failed or was cancelled, or the daemon refused the request
  2  usage error
  3  the daemon is unreachable

The socket is --socket, else $PINEAPPLE_JOBD_SOCKET, else daemon.socket in
/etc/config/pineapple-jobd, else /var/run/pineapple-jobd.sock.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pineapple-jobs", description=__doc__,
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--socket", help="daemon socket path")
    parser.add_argument("--json", action="store_true", help="machine-readable output (one JSON value per line)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each answer (default 10)")
    parser.add_argument("--version", action="version", version=f"pineapple-jobs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _job_commands(sub)
    _query_commands(sub)
    _fleet_commands(sub)
    from .schedule import register_schedule_commands

    register_schedule_commands(sub)
    return parser


def _job_commands(sub: Any) -> None:
    install = sub.add_parser("install", help="install packages")
    install.add_argument("packages", nargs="+", metavar="PKG")
    install.add_argument("--dest", help="opkg destination, e.g. sd")
    install.add_argument("--update", choices=("auto", "always", "never"), help="refresh package lists first")
    install.add_argument("--no-atomic", action="store_true", help="keep what was installed when a package fails")
    uninstall = sub.add_parser("uninstall", help="remove packages")
    uninstall.add_argument("packages", nargs="+", metavar="PKG")
    uninstall.add_argument("--no-autoremove", action="store_true", help="keep orphaned dependencies")
    uninstall.add_argument("--force", action="store_true", help="remove even if other packages depend on them")
    update = sub.add_parser("update", help="refresh the package lists")
    for command in (install, uninstall, update):
        command.add_argument("--wait", action="store_true", help="follow the job until it ends")
        command.add_argument("--job-timeout", type=float, help="seconds before the job is stopped")
        command.add_argument("--hold", action="store_true", help="queue it held: it runs after `release`")
    restart = sub.add_parser("restart", help="run a finished job again (a new job, linked to the old one)")
    restart.add_argument("job_id")
    restart.add_argument("--wait", action="store_true", help="follow the new job until it ends")
    for name, text in (("hold", "keep a queued job from starting"), ("release", "let a held job run")):
        sub.add_parser(name, help=text).add_argument("job_id")


def _query_commands(sub: Any) -> None:
    status = sub.add_parser("status", help="show a job")
    status.add_argument("job_id")
    status.add_argument("--log", action="store_true", help="include the log tail")
    listing = sub.add_parser("list", help="list jobs, newest first")
    listing.add_argument("--state", action="append", help="filter by state (repeatable)")
    listing.add_argument("--type", help="filter by job type")
    listing.add_argument("--package", help="jobs naming this package")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--offset", type=int, default=0)
    follow = sub.add_parser("follow", help="stream a job's progress and log until it ends")
    follow.add_argument("job_id")
    log = sub.add_parser("log", help="a job's log lines, paged")
    log.add_argument("job_id")
    log.add_argument("--offset", type=int, default=0, help="first line number (0: the oldest kept)")
    log.add_argument("--limit", type=int, default=100)
    log.add_argument("--follow", action="store_true", help="then keep printing new lines until the job ends")
    for name, text in (("cancel", "cancel a job"), ("remove", "forget a finished job")):
        sub.add_parser(name, help=text).add_argument("job_id")
    installed = sub.add_parser("installed", help="which of these packages are installed")
    installed.add_argument("packages", nargs="+", metavar="PKG")
    sub.add_parser("prune", help="forget every finished job")
    sub.add_parser("ping", help="is the daemon there?")
    sub.add_parser("stats", help="daemon statistics")
    sub.add_parser("types", help="job types the daemon can run")


def _fleet_commands(sub: Any) -> None:
    fleet = sub.add_parser("fleet", help="roll a job out to many devices through an MQTT broker",
                           description="Send a job to many devices' pineapple-jobd (mqtt.commands on) "
                                       "and follow it: a live per-device table, then a summary.")
    actions = fleet.add_subparsers(dest="fleet_action", required=True, metavar="ACTION")
    for name in ("install", "uninstall"):
        action = actions.add_parser(name, help=f"{name} packages on every device")
        action.add_argument("packages", nargs="+", metavar="PKG")
        action.add_argument("--broker", required=True, help="MQTT broker host")
        action.add_argument("--port", type=int, default=1883)
        action.add_argument("--devices", help="comma-separated device ids (default: every device seen online)")
        action.add_argument("--wait-timeout", type=float, default=300.0,
                            help="seconds to wait for every device (default 300)")
        action.add_argument("--username", default="")
        action.add_argument("--password", default="")
        action.add_argument("--ca-file", default="", help="CA certificate: use TLS")
        action.add_argument("--root", default="pineapple", help="topic root (devices publish under ROOT/<id>)")


def main(argv: list[str] | None = None) -> int:
    from ..api.client import DaemonUnavailable, JobClient
    from ..api.protocol import ApiError
    from . import commands

    args = build_parser().parse_args(argv)
    if args.command == "fleet":
        from .fleet import run_fleet

        return run_fleet(args)
    client = JobClient(args.socket, timeout=args.timeout)
    try:
        return commands.run(client, args)
    except DaemonUnavailable as exc:
        print(f"pineapple-jobs: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except ApiError as exc:
        print(f"pineapple-jobs: {exc.message} ({exc.code})", file=sys.stderr)
        return EXIT_USAGE if exc.code in commands.USAGE_CODES else EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
