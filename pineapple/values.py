"""Checking a JSON value against the Python types a request field or a job
parameter expects (one rule for the socket API and the job types)."""
from __future__ import annotations

KIND_NAMES = {str: "a string", bool: "true or false", int: "an integer", float: "a number",
              list: "a list", dict: "an object"}


def accepts(value: object, kinds: tuple[type, ...]) -> bool:
    """True when ``value`` is one of ``kinds``. JSON's true/false is never an
    integer here (though Python's bool is one), and an integer is a number."""
    if isinstance(value, bool):
        return bool in kinds
    return isinstance(value, kinds) or (float in kinds and isinstance(value, int))


def describe(kinds: tuple[type, ...]) -> str:
    """``"a string or a list"``: the kinds in words, for error messages."""
    return " or ".join(KIND_NAMES.get(kind, kind.__name__) for kind in kinds)
