"""Validation of opkg package names before they reach an opkg command line.

A name is passed to opkg as a separate argv entry, never through a shell, but
it must still not be read as an option (``--force-depends``, ``-d``) or carry
characters opkg itself refuses. Accepted: lowercase letters, digits and
``+ - . _``, starting with a letter or digit, at most 128 characters.

opkg-lede's own legal set (``OPKG_LEGAL_PKG_NAME_CHARS``) is ``a-z 0-9 . + -``;
``_`` is allowed here too because OpenWrt's ipkg-build accepts it. Requiring a
letter or digit first (as Debian policy does) also keeps ``.``/``..`` out of
the paths opkg builds from names (``info/NAME.control``).
"""
from __future__ import annotations

from pineapple.errors import INVALID_PACKAGE_NAME, JobError

MAX_NAME_LENGTH = 128
MAX_NAMES = 64
ALLOWED_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789+-._")
FIRST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
RULE = (
    "use lowercase letters, digits and + - . _, starting with a letter or digit, "
    f"at most {MAX_NAME_LENGTH} characters"
)
_SHOWN_CHARS = 40


def is_valid_package_name(name: object) -> bool:
    """True when ``name`` is a str opkg can take as a package name."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_NAME_LENGTH
        and name[0] in FIRST_CHARS
        and ALLOWED_CHARS.issuperset(name)
    )


def validate_package_name(name: object) -> str:
    """Return ``name`` unchanged, or raise JobError(code=INVALID_PACKAGE_NAME)."""
    if not isinstance(name, str):
        raise _invalid(f"package name must be a string, not {type(name).__name__}")
    if not is_valid_package_name(name):
        raise _invalid(f"invalid package name {_shown(name)}: {RULE}")
    return name


def validate_package_names(names: object) -> list[str]:
    """Validate a non-empty list of at most 64 names; duplicates are dropped,
    first occurrence kept. Raises JobError(code=INVALID_PACKAGE_NAME)."""
    if not isinstance(names, (list, tuple)):
        raise _invalid(f"packages must be a list of names, not {type(names).__name__}")
    if not names:
        raise _invalid("packages must name at least one package")
    if len(names) > MAX_NAMES:
        raise _invalid(f"too many packages ({len(names)}); at most {MAX_NAMES} per job")
    return list(dict.fromkeys(validate_package_name(name) for name in names))


def _shown(name: str) -> str:
    """repr() of the name, cut short so a hostile value cannot flood a log."""
    if len(name) <= _SHOWN_CHARS:
        return repr(name)
    return f"{name[:_SHOWN_CHARS]!r}... ({len(name)} characters)"


def _invalid(message: str) -> JobError:
    return JobError(message, code=INVALID_PACKAGE_NAME)
