"""``Request``: one decoded module request, its JSON keys readable as attributes."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

_MISSING = object()


class Request:
    """A module request. ``request.action`` and every other JSON key of the
    request object are attributes; a key the request does not carry raises
    :class:`AttributeError` naming the action and the keys it did carry.

    Keys that are not Python identifiers (or that clash with a method name,
    such as ``get``) are read with :meth:`get` or ``request["key"]``.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        object.__setattr__(self, "_fields", dict(fields))

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: i.e. for the request's keys.
        fields = object.__getattribute__(self, "_fields")
        try:
            return fields[name]
        except KeyError:
            action = fields.get("action", "?")
            known = ", ".join(sorted(fields)) or "none"
            raise AttributeError(
                f"request for action {action!r} has no field {name!r} (fields sent: {known}); "
                f"use request.get({name!r}, default) for optional fields") from None

    def __setattr__(self, name: str, value: Any) -> None:
        # Handlers may annotate a request (Hak5's Request is a plain object).
        self._fields[name] = value

    def __getitem__(self, name: str) -> Any:
        return self._fields[name]

    def __contains__(self, name: object) -> bool:
        return name in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __repr__(self) -> str:
        return f"Request({self._fields!r})"

    def get(self, name: str, default: Any = None) -> Any:
        """The value of key ``name``, or ``default`` when the request lacks it."""
        return self._fields.get(name, default)

    def to_dict(self) -> dict[str, Any]:
        """A copy of the request's JSON object."""
        return dict(self._fields)
