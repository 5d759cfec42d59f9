"""``pineapple-jobd``: the daemon's command line entry point."""
from __future__ import annotations

import logging
import signal
import sys
from types import SimpleNamespace
from typing import Any

from .. import __version__
from .config import DEFAULT_CONFIG_PATH, ConfigError, load_config

EPILOG = f"""\
Configuration is read from the UCI file (default {DEFAULT_CONFIG_PATH}), then environment
variables PINEAPPLE_JOBD_<OPTION> / PINEAPPLE_JOBD_<SECTION>_<OPTION>, then
these flags. Every option and its default: docs/config.md.

Signals: SIGTERM/SIGINT finish running jobs (up to daemon.shutdown_grace
seconds, then cancel them), save the journal, remove the socket and exit 0;
a second signal cancels running jobs at once. SIGHUP re-reads the
configuration and applies it without stopping jobs (daemon.socket and
daemon.state_dir need a restart; the log says so).
"""

# flag -> "section.option"
_SHORTCUTS = {
    "socket": "daemon.socket", "state_dir": "daemon.state_dir", "workers": "daemon.workers",
    "log_level": "daemon.log_level", "opkg_binary": "opkg.binary", "opkg_root": "opkg.offline_root",
    "opkg_conf": "opkg.conf",
}


def build_parser() -> Any:
    """The full ``argparse`` parser: help, ``--version``, abbreviations and
    error messages (see :func:`parse_args`)."""
    import argparse

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


_VALUE_FLAGS = {"--config": "config", **{"--" + flag.replace("_", "-"): flag for flag in _SHORTCUTS}}


def parse_args(argv: list[str]) -> Any:
    """The command line as ``build_parser().parse_args(argv)`` reads it.

    The flags the daemon is started with are read directly; anything else
    (``--help``, ``--version``, an abbreviation, a mistake) goes to argparse.
    Importing and building argparse costs ~1 MB of RSS (it drags in shutil,
    locale, bz2, lzma) and ~10 ms, which a resident daemon should not carry.
    """
    args = _quick_parse(argv)
    return args if args is not None else build_parser().parse_args(argv)


def _quick_parse(argv: list[str]) -> SimpleNamespace | None:
    values: dict[str, Any] = dict.fromkeys(_VALUE_FLAGS.values())
    values.update(set=[], print_config=False)
    i = 0
    while i < len(argv):
        name, eq, value = argv[i].partition("=")
        i += 1
        if name == "--print-config" and not eq:
            values["print_config"] = True
            continue
        if name != "--set" and name not in _VALUE_FLAGS:
            return None
        if not eq:
            if i >= len(argv) or argv[i].startswith("-"):
                return None  # argparse decides what a missing or dash-led value means
            value = argv[i]
            i += 1
        if name == "--set":
            values["set"].append(value)
        else:
            values[_VALUE_FLAGS[name]] = value
    return SimpleNamespace(**values)


def overrides_from(args: Any) -> dict[str, str]:
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
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = load_config(args.config, overrides=overrides_from(args))
    except ConfigError as exc:
        print(f"pineapple-jobd: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        return _print_config(config)
    setup_logging(config.daemon.log_level)
    overrides = overrides_from(args)
    return run(config, lambda: load_config(args.config, overrides=overrides))


def run(config, reload_config=None) -> int:
    """Run the daemon until SIGTERM/SIGINT; SIGHUP reloads with ``reload_config()``."""
    from ..api.server import ServerError
    from .service import Daemon

    log = logging.getLogger("pineapple.daemon")
    daemon = Daemon(config, reload_config)
    # Before anything else: SIGHUP's default action would end the process,
    # and a SIGTERM while starting (MQTT may already be online) must still
    # stop cleanly, once the parts it drains exist.
    # The kernel may hand a signal to any thread: the wake pipe makes the I/O
    # loop run the handler at once wherever it landed (ApiServer.wake_on_signals).
    daemon.server.wake_on_signals()
    signal.signal(signal.SIGHUP, lambda _num, _frame: daemon.request_reload())
    early_stops: list[str] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda num, _frame: early_stops.append(signal.Signals(num).name))
    try:
        daemon.start()
    except (ServerError, OSError) as exc:
        print(f"pineapple-jobd: cannot start: {exc}", file=sys.stderr)
        daemon.close()
        return 1
    except ValueError as exc:  # a bad `config schedule` or `config hook` section
        print(f"pineapple-jobd: configuration error: {exc}", file=sys.stderr)
        daemon.close()
        return 2
    except Exception:
        log.exception("cannot start")
        daemon.close()
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda num, _frame: _on_loop(daemon, daemon.request_stop, signal.Signals(num).name))
    for reason in early_stops[:2]:
        daemon.request_stop(reason)
    journal = daemon.manager.journal_status()["state"]
    log.info("ready: pineapple-jobd %s on %s (%d workers, state in %s%s)", __version__,
             config.daemon.socket, config.daemon.workers, config.daemon.state_dir,
             "" if journal == "ok" else f"; journal {journal.upper()}")
    try:
        daemon.serve()
    finally:
        daemon.close()
    return 0


def _on_loop(daemon, action, *args) -> None:
    """What a signal handler does: hand ``action`` to the I/O loop, nothing
    more. Python runs a handler inside whatever the main thread was doing,
    a write to stderr included; a handler that logged there would write
    re-entrantly, fail, and its stop would be lost."""
    daemon.server.call_soon(lambda: action(*args))


def _print_config(config) -> int:
    for section in ("daemon", "opkg", "mqtt"):
        for option, value in getattr(config, section).to_dict().items():
            if option == "password" and value:
                value = "***"
            print(f"{section}.{option}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
