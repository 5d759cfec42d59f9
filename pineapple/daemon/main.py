"""``pineapple-jobd``: the daemon's command line entry point."""
from __future__ import annotations

import argparse
import logging
import signal
import sys

from .. import __version__
from .config import DEFAULT_CONFIG_PATH, ConfigError, load_config

EPILOG = f"""\
Configuration is read from the UCI file (default {DEFAULT_CONFIG_PATH}), then environment
variables PINEAPPLE_JOBD_<OPTION> / PINEAPPLE_JOBD_<SECTION>_<OPTION>, then
these flags. Every option and its default: docs/config.md.

Signals: SIGTERM/SIGINT finish running jobs (up to daemon.shutdown_grace
seconds, then cancel them), save the journal, remove the socket and exit 0;
a second signal cancels running jobs at once.
"""

# flag -> "section.option"
_SHORTCUTS = {
    "socket": "daemon.socket", "state_dir": "daemon.state_dir", "workers": "daemon.workers",
    "log_level": "daemon.log_level", "opkg_binary": "opkg.binary", "opkg_root": "opkg.offline_root",
    "opkg_conf": "opkg.conf",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pineapple-jobd", description="The dependency job daemon for OpenWrt devices.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="PATH", help=f"UCI config file (default {DEFAULT_CONFIG_PATH} if present)")
    parser.add_argument("--socket", help="API socket path")
    parser.add_argument("--state-dir", help="journal directory (RAM-backed on devices)")
    parser.add_argument("--workers", help="worker threads")
    parser.add_argument("--log-level", help="debug, info, warning or error")
    parser.add_argument("--opkg-binary", help="opkg executable")
    parser.add_argument("--opkg-root", help="opkg offline root (-o)")
    parser.add_argument("--opkg-conf", help="opkg config file (-f)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.OPTION=VALUE",
                        help="set any option, e.g. --set mqtt.enabled=1 (repeatable)")
    parser.add_argument("--print-config", action="store_true", help="print the effective configuration and exit")
    parser.add_argument("--version", action="version", version=f"pineapple-jobd {__version__}")
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, str]:
    overrides = {key: getattr(args, flag) for flag, key in _SHORTCUTS.items() if getattr(args, flag) is not None}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"--set expects SECTION.OPTION=VALUE, got {item!r}")
        overrides[key.strip()] = value
    return overrides


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)  # procd forwards stderr to the system log
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("pineapple")
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config, overrides=overrides_from(args))
    except ConfigError as exc:
        print(f"pineapple-jobd: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        return _print_config(config)
    setup_logging(config.daemon.log_level)
    return run(config)


def run(config) -> int:
    from ..api.server import ServerError
    from .service import Daemon

    log = logging.getLogger("pineapple.daemon")
    daemon = Daemon(config)
    try:
        daemon.start()
    except (ServerError, OSError) as exc:
        print(f"pineapple-jobd: cannot start: {exc}", file=sys.stderr)
        daemon.close()
        return 1
    except Exception:
        log.exception("cannot start")
        daemon.close()
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda num, _frame: daemon.request_stop(signal.Signals(num).name))
    log.info("ready: pineapple-jobd %s on %s (%d workers, state in %s)", __version__,
             config.daemon.socket, config.daemon.workers, config.daemon.state_dir)
    try:
        daemon.serve()
    finally:
        daemon.close()
    return 0


def _print_config(config) -> int:
    from dataclasses import asdict

    for section in ("daemon", "opkg", "mqtt"):
        for option, value in asdict(getattr(config, section)).items():
            if option == "password" and value:
                value = "***"
            print(f"{section}.{option}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
