"""Entry point of the opkg stand-in: opkg-cl's main() (src/opkg-cl.c).

Order of a run, as in opkg-cl: parse options; find the sub-command (unknown
-> usage, exit 1); read the configuration; take the lock (busy -> only the
``Collected errors`` block, exit 255); resolve dests; load feed lists and/or
status files as the command needs; run it; release (and unlink) the lock;
print collected errors on stderr; exit with the command's value & 0xff
(-1 -> 255, update -> number of failed feeds).
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable

from . import args as cli_args
from . import faults
from .conf import ConfError, read_config_files, resolve
from .lock import LockError, OpkgLock
from .messages import Messages
from .pkgdb import PackageDB
from .runtime import Run

INTERNAL_ERROR = 70  # a bug in the stand-in itself, distinct from opkg's codes


@dataclasses.dataclass(frozen=True)
class Command:
    """One sub-command: its function, whether it needs arguments, what main()
    loads before running it (opkg-cl's nocheckfordirorfile/noreadfeedsfile)."""

    run: Callable[[Run, list[str]], int]
    requires_args: bool
    load_feeds: bool
    load_status: bool


def _lazy(module: str, function: str) -> Callable[[Run, list[str]], int]:
    """Import a command's module only when it runs: a read-only command then
    skips tarfile/subprocess/... and opkg's start-up stays cheap."""
    def call(run: Run, words: list[str]) -> int:
        mod = importlib.import_module(f"{__package__}.{module}")
        return int(getattr(mod, function)(run, words))
    return call


COMMANDS: dict[str, Command] = {
    "update": Command(_lazy("update", "update_cmd"), False, True, True),
    "install": Command(_lazy("install", "install_cmd"), True, False, False),
    "remove": Command(_lazy("remove", "remove_cmd"), True, False, True),
    "list": Command(_lazy("query", "list_cmd"), False, True, True),
    "list-installed": Command(_lazy("query", "list_installed_cmd"), False, False, True),
    "list_installed": Command(_lazy("query", "list_installed_cmd"), False, False, True),
    "status": Command(_lazy("query", "status_cmd"), False, False, True),
    "info": Command(_lazy("query", "info_cmd"), False, True, True),
    "files": Command(_lazy("query", "files_cmd"), True, False, True),
    "configure": Command(_lazy("install", "configure_cmd"), False, False, True),
    "print-architecture": Command(_lazy("query", "print_architecture_cmd"), False, False, False),
    "print_architecture": Command(_lazy("query", "print_architecture_cmd"), False, False, False),
    "compare-versions": Command(_lazy("query", "compare_versions_cmd"), True, False, True),
    "compare_versions": Command(_lazy("query", "compare_versions_cmd"), True, False, True),
}
# Real opkg sub-commands the stand-in does not simulate.
NOT_SIMULATED = {
    "upgrade", "flag", "list-upgradable", "list_upgradable", "list-changed-conffiles",
    "list_changed_conffiles", "search", "find", "download", "depends", "whatdepends",
    "whatdependsrec", "whatrecommends", "whatsuggests", "whatprovides", "whatconflicts",
    "whatreplaces", "print-installation-architecture", "print_installation_architecture",
}


def main(argv: list[str]) -> int:
    """Run opkg with ``argv`` (argv[0] is the program name); returns the exit status."""
    faults.log_call(argv)
    _c_signal_defaults()
    _c_stdio()
    prog = argv[0] if argv else "opkg"
    try:
        opts, words = cli_args.parse_args(argv[1:])
    except cli_args.UsageError:
        return _usage("opkg must have one sub-command argument\n")
    if opts.version:
        sys.stdout.write(f"opkg version {cli_args.VERSION}\n")
        return 0
    if not words:
        return _usage("opkg must have one sub-command argument\n")
    name, words = words[0], words[1:]
    if name in NOT_SIMULATED:
        sys.stderr.write(f"{prog}: sub-command {name} is not simulated by the opkg stand-in\n")
        return 1
    command = COMMANDS.get(name)
    if command is None:
        return _usage(f"{prog}: unknown sub-command {name}\n")
    msgs = Messages(opts.verbosity)
    try:
        return _run(prog, name, command, opts, words, msgs)
    except Exception:  # noqa: BLE001 - a stand-in bug must not look like an opkg error
        msgs.flush_errors()
        sys.stderr.write("opkg stand-in internal error:\n" + traceback.format_exc())
        return INTERNAL_ERROR


def _c_signal_defaults() -> None:
    """Python ignores SIGPIPE and turns SIGINT into KeyboardInterrupt; a C
    program like opkg dies of both (install/remove install their own SIGINT
    handler later, as opkg does)."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class _OpkgStdout:
    """stdout as opkg's messages use it (libopkg/opkg_message.c): when a
    message cannot be written — EIO on a pty whose reader has gone, e.g. the
    daemon that ran opkg was killed — opkg prints "opkg_message: encountered
    an output or encoding error during vprintf." on stderr and exits 1
    (EXIT_FAILURE) at once, without writing its status database; when
    stderr is a pipe nobody reads any more, that print kills it with
    SIGPIPE first. Measured on opkg-lede 38eccbb (strace)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError:
            self._die()
            raise  # not reached

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            self._die()

    def _die(self) -> None:
        os.write(2, b"opkg_message: encountered an output or encoding error during vprintf.\n")  # SIGPIPE here
        os._exit(1)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _c_stdio() -> None:
    sys.stdout = _OpkgStdout(sys.stdout)  # type: ignore[assignment]


def _usage(complaint: str) -> int:
    sys.stderr.write(complaint)
    cli_args.print_usage()
    return 1


def _run(prog: str, name: str, command: Command, opts: cli_args.Options, words: list[str],
         msgs: Messages) -> int:
    try:
        conf = read_config_files(opts, msgs)
    except ConfError:
        msgs.flush_errors()
        return 255
    if not conf.offline_root and not faults.host_root_allowed():
        sys.stderr.write("opkg stand-in: refusing to work on the host's / - pass -o ROOT "
                         "(or set OFFLINE_ROOT, or OPKG_STANDIN_HOST_ROOT=1)\n")
        return 255
    lock = OpkgLock(conf.lock_file)
    try:
        lock.acquire(msgs)
    except LockError:
        msgs.flush_errors()
        return 255
    run = Run(conf=conf, msgs=msgs, db=PackageDB(conf, msgs))
    try:
        run.make_tmp_dir()
        resolve(conf, msgs)
    except (ConfError, OSError):
        run.remove_tmp_dir()
        lock.release()
        msgs.flush_errors()
        return 255
    _lock_faults()
    if command.load_feeds:
        run.db.load_feeds()
    if command.load_status:
        run.db.load_status()
    if command.requires_args and not words:
        # opkg-cl calls usage() -> exit(1) here: no error list, no unlink.
        run.remove_tmp_dir()
        return _usage(f"{prog}: the ``{name}'' command requires at least one argument\n")
    try:
        err = command.run(run, words)
    finally:
        run.remove_tmp_dir()
        lock.release()
    msgs.flush_errors()
    return err & 0xFF


def _lock_faults() -> None:
    """OPKG_STANDIN_HANG=lock and OPKG_STANDIN_LOCK_HOLD: sit on the lock."""
    faults.hang_if("lock")
    hold = faults.seconds("OPKG_STANDIN_LOCK_HOLD")
    if hold:
        time.sleep(hold)
