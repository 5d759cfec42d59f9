"""``uci_get`` and ``uci_set``: OpenWrt's UCI configuration, through the
``uci`` command (``$PINEAPPLE_UCI_BINARY`` points elsewhere), as Hak5's
``uci_helpers``.

Different from Hak5's: the value is passed as is (Hak5's wrapped it in
quotes that could end up in the value), only the changed config is
committed (Hak5's committed every config with pending changes), and
:func:`uci_get` answers the value without the trailing newline.
"""
from __future__ import annotations

import os
import subprocess

UCI_ENV = "PINEAPPLE_UCI_BINARY"


def _uci() -> str:
    return os.environ.get(UCI_ENV) or "uci"


def uci_set(key: str, value: object) -> bool:
    """``uci set KEY=VALUE`` then ``uci commit CONFIG``; True when both worked.
    ``key`` is ``config.section.option`` (or ``config.section``)."""
    config = _config_of(key)
    done = subprocess.run([_uci(), "set", f"{key}={value}"], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if done.returncode != 0:
        return False
    return subprocess.run([_uci(), "commit", config], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def uci_get(key: str) -> str:
    """The value of ``key`` (``uci get``), without its trailing newline.
    A key that does not exist raises :class:`subprocess.CalledProcessError`
    (its ``stderr`` says why)."""
    done = subprocess.run([_uci(), "get", key], stdin=subprocess.DEVNULL, capture_output=True,
                          check=True, text=True)
    return done.stdout[:-1] if done.stdout.endswith("\n") else done.stdout


def _config_of(key: str) -> str:
    config = key.split(".", 1)[0]
    if not config or "=" in key or key.startswith("-") or "." not in key:
        raise ValueError(f"invalid UCI key {key!r}: use config.section.option")
    return config
