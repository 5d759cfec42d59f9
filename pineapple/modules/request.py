"""``Request``: one decoded module request, its JSON keys readable as attributes."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable


class _Method:
    """A method that a request field of the same name cannot shadow.

    A request's fields live in its ``__dict__`` (as in Hak5's library, so
    ``request.__dict__.get("x")`` works); a data descriptor on the class is
    looked up before the instance ``__dict__``, so ``request.get`` stays the
    method even when the request carries a field named ``get``."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, request: Any, owner: type | None = None) -> Any:
        return self if request is None else self.func.__get__(request, owner)

    def __set__(self, request: Any, value: Any) -> None:
        raise AttributeError(f"{self.func.__name__!r} is a method of Request; "
                             f"set the field with request[{self.func.__name__!r}] = value")


class Request:
    """A module request. ``request.action`` and every other JSON key of the
    request object are attributes, and ``request.__dict__`` *is* the field
    dict (``request.__dict__.get("job_id")`` reads a field, as Hak5's own
    code does). A key the request does not carry raises
    :class:`AttributeError` naming the action and the keys it did carry.

    Keys that are not Python identifiers, or that are named like the methods
    ``get`` and ``to_dict``, are read with :meth:`get` or ``request["key"]``.
    """

    def __init__(self, fields: dict[str, Any]) -> None:
        object.__setattr__(self, "__dict__", dict(fields))

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup (the fields in __dict__) fails.
        if name.startswith("__"):
            raise AttributeError(name)  # copy/pickle probing dunders: no field message
        fields = self.__dict__
        action = fields.get("action", "?")
        known = ", ".join(sorted(fields)) or "none"
        raise AttributeError(
            f"request for action {action!r} has no field {name!r} (fields sent: {known}); "
            f"use request.get({name!r}, default) for optional fields")

    def __getitem__(self, name: str) -> Any:
        return self.__dict__[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.__dict__[name] = value

    def __contains__(self, name: object) -> bool:
        return name in self.__dict__

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dict__)

    def __repr__(self) -> str:
        return f"Request({self.__dict__!r})"

    @_Method
    def get(self, name: str, default: Any = None) -> Any:
        """The value of key ``name``, or ``default`` when the request lacks it."""
        return self.__dict__.get(name, default)

    @_Method
    def to_dict(self) -> dict[str, Any]:
        """A copy of the request's JSON object."""
        return dict(self.__dict__)
