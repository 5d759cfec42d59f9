"""``json_to_bytes`` and ``get_version``."""
from __future__ import annotations

import json
from typing import Any

VERSION_FILE = "/etc/pineapple/version"


def json_to_bytes(message: Any) -> bytes:
    """``message`` (a dict or a list) as compact JSON in UTF-8; TypeError
    for anything else (a module answer is always an object or an array)."""
    if not isinstance(message, (dict, list)):
        raise TypeError(f"json_to_bytes takes a dict or a list, not {type(message).__name__}")
    return json.dumps(message).encode("utf-8")


def get_version(path: str = VERSION_FILE) -> tuple[str, str]:
    """The firmware's ``(version, build)``: the first two lines of
    ``/etc/pineapple/version`` (a missing line reads as ``""``)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist: this is not a WiFi Pineapple firmware") from None
    lines += ["", ""]
    return lines[0].strip(), lines[1].strip()
