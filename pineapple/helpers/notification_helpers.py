"""Notifications in the device's web UI (the bell list), as Hak5's
``notification_helpers``:

    import pineapple.helpers.notification_helpers as notifier
    notifier.send_notification("Capture finished", "tcpdump", notifier.SUCCESS)

The device's API server listens on ``/tmp/notifications.sock`` and takes
one JSON object per connection: ``{"level", "message", "module_name"}``.
``$PINEAPPLE_NOTIFICATION_SOCKET`` (or ``socket_path=``) points elsewhere.

Different from Hak5's: a missing or refusing socket answers False (with a
warning in the log) instead of raising into the caller — a job callback
that notifies no longer skips the callbacks after it — and the socket is
always closed.
"""
from __future__ import annotations

import json
import logging
import os
import socket

INFO = 0
WARN = 1
ERROR = 2
OTHER = 3
SUCCESS = 4
LEVELS = {INFO: "info", WARN: "warn", ERROR: "error", OTHER: "other", SUCCESS: "success"}

NOTIFICATION_SOCKET = "/tmp/notifications.sock"
SOCKET_ENV = "PINEAPPLE_NOTIFICATION_SOCKET"
TIMEOUT = 2.0

log = logging.getLogger("pineapple.helpers.notifications")


def notification_socket_path() -> str:
    """``$PINEAPPLE_NOTIFICATION_SOCKET``, else ``/tmp/notifications.sock``."""
    return os.environ.get(SOCKET_ENV) or NOTIFICATION_SOCKET


def send_notification(message: str, module_name: str, level: int = INFO, *,
                      socket_path: str | None = None, timeout: float = TIMEOUT) -> bool:
    """Send one notification; True once the server took it, False when it
    could not be delivered (no server, refused, timed out). A level other
    than 0-4 raises ValueError; ``message`` None (a job's ``error`` when
    there is none) is sent as an empty text."""
    if isinstance(level, bool) or not isinstance(level, int) or level not in LEVELS:
        raise ValueError(f"notification level must be one of {sorted(LEVELS)} (INFO..SUCCESS), not {level!r}")
    body = json.dumps({"level": level, "message": "" if message is None else str(message),
                       "module_name": str(module_name)}).encode("utf-8")
    path = socket_path or notification_socket_path()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(body)
        sock.shutdown(socket.SHUT_WR)  # the server reads to EOF
        return True
    except OSError as exc:
        log.warning("notification from %s not delivered to %s: %s", module_name, path, exc.strerror or exc)
        return False
    finally:
        sock.close()
