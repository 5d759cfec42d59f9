"""``Record``: a plain mutable class with equality and a readable repr
from its attributes, for the few records that change after they are built.

Not ``dataclasses``: importing it pulls in ``inspect`` (and ``ast``,
``dis``), ~1 MB of RSS and ~7 ms that a resident daemon pays for nothing.
Immutable records are ``typing.NamedTuple`` classes instead.
"""
from __future__ import annotations


class Record:
    """Subclasses set their attributes in ``__init__``; two records are
    equal when they are of the same class with equal attributes."""

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in vars(self).items())
        return f"{type(self).__name__}({fields})"
