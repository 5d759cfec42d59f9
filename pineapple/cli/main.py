"""``pineapple-jobs``: install, remove and watch opkg jobs of pineapple-jobd."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

DESCRIPTION = "Install, remove and watch the opkg jobs of pineapple-jobd (docs/cli.md)."
EPILOG = """\
exit codes:
    0  success (the job succeeded, or the request was answered)
    1  the job failed or was cancelled, or the daemon refused the request
    2  usage error
    3  the daemon is unreachable
  130  interrupted (Ctrl-C); a job being waited for or followed goes on

Options --socket, --json and --timeout go before or after the command.
Output is coloured on a terminal (not with NO_COLOR set) and plain when piped.

The socket is --socket, else $PINEAPPLE_JOBD_SOCKET, else daemon.socket in
/etc/config/pineapple-jobd, else /var/run/pineapple-jobd.sock.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pineapple-jobs", description=DESCRIPTION,
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _global_options(parser, default=None)
    parser.set_defaults(json=False, timeout=10.0)
    parser.add_argument("--version", action="version", version=f"pineapple-jobs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _job_commands(sub)
    _query_commands(sub)
    _fleet_commands(sub)
    from .schedule import register_schedule_commands

    register_schedule_commands(sub)
    for command in _sub_parsers(parser):
        # `pineapple-jobs list --json` as well as `pineapple-jobs --json list`. SUPPRESS: a flag
        # not given after the command leaves the value given before it (or the default) alone.
        _global_options(command, default=argparse.SUPPRESS)
    return parser


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--socket", default=default, help="daemon socket path")
    parser.add_argument("--json", action="store_true", default=default,
                        help="machine-readable output (one JSON value per line)")
    parser.add_argument("--timeout", type=float, default=default,
                        help="seconds to wait for each answer (default 10)")


def _sub_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser below ``parser`` (commands, and actions such as `fleet install`), once each."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if child not in found:  # an alias maps to the same parser
                    found.append(child)
                    found += [p for p in _sub_parsers(child) if p not in found]
    return found


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
    show = sub.add_parser("show", aliases=["status"], help="show a job (alias: status)")
    show.add_argument("job_id")
    show.add_argument("--log", action="store_true", help="every log line kept (default: the last 5)")
    listing = sub.add_parser("list", help="list jobs, newest first")
    listing.add_argument("--state", action="append", help="filter by state (repeatable)")
    listing.add_argument("--type", help="filter by job type")
    listing.add_argument("--package", help="jobs naming this package")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--offset", type=int, default=0)
    follow = sub.add_parser("follow", help="stream a job's progress and log until it ends")
    follow.add_argument("job_id")
    top = sub.add_parser("top", help="live view of running and queued jobs (Ctrl-C quits)")
    top.add_argument("--finished", type=int, default=5, metavar="N",
                     help="also show the N most recently finished jobs (default 5)")
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


FLEET_EPILOG = """\
exit codes:
    0  every device succeeded (cancel: done)
    1  a device failed, refused the roll-out or was cancelled (or no such roll-out)
    2  usage error (a bad command key file)
    3  the broker is unreachable
    4  nothing failed, but devices are still pending or running: the roll-out
       goes on (they apply it when they come online); see `fleet status ID`

Signing: with --command-key-file (or $PINEAPPLE_COMMAND_KEY) every record is
signed for the devices' mqtt.command_key (docs/mqtt.md).
"""


def _fleet_commands(sub: Any) -> None:
    fleet = sub.add_parser("fleet", help="roll a job out to many devices through an MQTT broker",
                           description="Durable roll-outs: a retained record per device on the broker, applied "
                                       "once by each device when it is online (now or later), followed live.",
                           epilog=FLEET_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = fleet.add_subparsers(dest="fleet_action", required=True, metavar="ACTION")
    for name in ("install", "uninstall"):
        action = actions.add_parser(name, help=f"{name} packages on every device (a new roll-out)")
        action.add_argument("packages", nargs="+", metavar="PKG")
        action.add_argument("--devices", help="comma-separated device ids (default: every device with a status "
                                              "on the broker, online or not)")
        action.add_argument("--wait-timeout", type=float, default=300.0,
                            help="seconds to follow it (default 300); devices not done by then go on")
        _broker_options(action)
    status = actions.add_parser("status", help="where every device is with a roll-out")
    status.add_argument("rollout_id", metavar="ID")
    status.add_argument("--wait-timeout", type=float, default=0.0,
                        help="follow it up to this many seconds until every device is done (default 0: now)")
    _broker_options(status)
    cancel = actions.add_parser("cancel", help="stop a roll-out reaching the devices that have not applied it")
    cancel.add_argument("rollout_id", metavar="ID")
    _broker_options(cancel)


def _broker_options(action: argparse.ArgumentParser) -> None:
    action.add_argument("--broker", required=True, help="MQTT broker host")
    action.add_argument("--port", type=int, default=1883)
    action.add_argument("--username", default="")
    action.add_argument("--password", default="")
    action.add_argument("--ca-file", default="", help="CA certificate: use TLS")
    action.add_argument("--cert-file", default="", help="client certificate (PEM) for the broker: use TLS")
    action.add_argument("--key-file", default="", help="private key of --cert-file (default: in it)")
    action.add_argument("--command-key-file", default="",
                        help="file holding the devices' mqtt.command_key: sign the roll-out")
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
        print(unreachable_hint(str(exc), args.socket), file=sys.stderr)
        return EXIT_UNREACHABLE
    except ApiError as exc:
        print(f"pineapple-jobs: {exc.message} ({exc.code})", file=sys.stderr)
        return EXIT_USAGE if exc.code in commands.USAGE_CODES else EXIT_FAILED
    except KeyboardInterrupt:
        print(file=sys.stderr)  # the terminal's ^C stays on a line of its own
        return EXIT_INTERRUPTED
    finally:
        client.close()


def unreachable_hint(message: str, socket_flag: str | None) -> str:
    """What to check when nothing answers: is the daemon started, is this its socket?"""
    import os

    from ..daemon.config import DEFAULT_CONFIG_PATH

    if "Permission denied" in message:
        return ("  The socket is there but you may not use it: run as root, or as a member of "
                "the group in daemon.socket_group (docs/config.md).")
    if socket_flag:
        source = "--socket"
    elif os.environ.get("PINEAPPLE_JOBD_SOCKET"):
        source = "$PINEAPPLE_JOBD_SOCKET"
    elif os.path.exists(DEFAULT_CONFIG_PATH):
        source = f"daemon.socket in {DEFAULT_CONFIG_PATH}"
    else:
        source = "the built-in default (neither --socket nor $PINEAPPLE_JOBD_SOCKET is set)"
    return ("  Is pineapple-jobd running? Start it with `make run` (in a checkout) or "
            "`/etc/init.d/pineapple-jobd start` (on the device).\n"
            f"  The socket path came from {source}; choose another with --socket PATH "
            "or PINEAPPLE_JOBD_SOCKET=PATH.")


if __name__ == "__main__":
    sys.exit(main())
