"""Small JSON files in the daemon's state directory (applied roll-outs,
command nonces): read forgivingly, written atomically."""
from __future__ import annotations

import json
import logging
import os
from typing import Any

log = logging.getLogger("pineapple.mqtt")


def load(path: str | None, what: str) -> Any:
    """The JSON value in ``path``; None when there is no file (or no path),
    or it cannot be read (logged, naming ``what`` is lost)."""
    if path is None:
        return None
    try:
        with open(path) as file:
            return json.load(file)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("MQTT: cannot read %s (%s): %s", path, exc, what)
        return None


def save(path: str | None, value: Any) -> None:
    """Write ``value`` to ``path`` (a temporary file renamed into place)."""
    if path is None:
        return
    temporary = f"{path}.tmp"
    try:
        with open(temporary, "w") as file:
            json.dump(value, file, separators=(",", ":"))
        os.replace(temporary, path)
    except OSError as exc:
        log.warning("MQTT: cannot write %s: %s", path, exc)
