"""Fault knobs of the stand-in (environment variables; see devtools/README.md).

- ``OPKG_STANDIN_CALL_LOG=PATH``: append ``{"pid": N, "argv": [...]}`` per run.
- ``OPKG_STANDIN_DOWNLOAD_DELAY=SECONDS``: sleep before each package download.
- ``OPKG_STANDIN_UPDATE_DELAY=SECONDS``: sleep before each list download.
- ``OPKG_STANDIN_HANG=STAGE[:PKG][,...]``: sleep forever at a stage
  (``lock``, ``update``, ``download``, ``unpack``, ``configure``, ``remove``);
  with ``:PKG`` only for that package (or feed, for ``update``).
- ``OPKG_STANDIN_FREE_KB=N``: pretend every filesystem has N kB free.
- ``OPKG_STANDIN_LOCK_HOLD=SECONDS``: after taking the lock, hold it that long
  doing nothing, then run the command (a "LuCI is running opkg" simulator).
- ``OPKG_STANDIN_HOST_ROOT=1``: allow running without an offline root (the
  stand-in refuses to touch the host's / otherwise).
Feed-level: a control field ``X-Standin-Postinst-Exit: N`` makes that
package's configure step fail with status N, even under ``-o``.
"""
from __future__ import annotations

import os
import sys
import time

POSTINST_EXIT_FIELD = "X-Standin-Postinst-Exit"


def log_call(argv: list[str]) -> None:
    """Append one JSON line for this invocation to $OPKG_STANDIN_CALL_LOG."""
    path = os.environ.get("OPKG_STANDIN_CALL_LOG")
    if not path:
        return
    import json  # only when logging: keeps start-up cheap

    line = json.dumps({"pid": os.getpid(), "argv": argv}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one write per line: safe with O_APPEND
    finally:
        os.close(fd)


def seconds(name: str) -> float:
    """A non-negative float knob, 0 when unset or invalid."""
    try:
        return max(0.0, float(os.environ.get(name, "0") or 0))
    except ValueError:
        return 0.0


def delay(name: str) -> None:
    """Sleep for the knob's seconds, if set."""
    wait = seconds(name)
    if wait:
        time.sleep(wait)


def hang_if(stage: str, name: str | None = None) -> None:
    """Sleep forever if OPKG_STANDIN_HANG names this stage (and package)."""
    for item in os.environ.get("OPKG_STANDIN_HANG", "").split(","):
        want_stage, _, want_name = item.strip().partition(":")
        if want_stage == stage and (not want_name or want_name == name):
            sys.stdout.flush()  # so a reader sees how far the run got
            while True:
                time.sleep(3600)


def free_kb_override() -> int | None:
    """OPKG_STANDIN_FREE_KB as an int, or None."""
    value = os.environ.get("OPKG_STANDIN_FREE_KB", "").strip()
    return int(value) if value.isdigit() else None


def postinst_exit(fields: dict[str, str]) -> int | None:
    """The forced postinst status from the package's control fields."""
    value = fields.get(POSTINST_EXIT_FIELD, "").strip()
    return int(value) if value.isdigit() else None


def host_root_allowed() -> bool:
    return os.environ.get("OPKG_STANDIN_HOST_ROOT") == "1"
