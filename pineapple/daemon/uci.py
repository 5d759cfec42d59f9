"""A reader for OpenWrt's UCI configuration file format (standard library only).

    config daemon 'main'
        option socket '/var/run/pineapple-jobd.sock'
        list allowed_uid '1000'

gives ``[Section(type="daemon", name="main", options={"socket": "...", "allowed_uid": ["1000"]})]``.
``option`` values are strings, ``list`` values lists of strings. Quoting
follows the shell (single or double quotes, backslash escapes outside single
quotes); ``#`` starts a comment.
"""
from __future__ import annotations

import shlex


class UciError(ValueError):
    """A syntax error, with the file and line number in the message."""


class Section:
    """One ``config TYPE 'NAME'`` block (a plain class: no ``dataclasses`` import)."""

    __slots__ = ("type", "name", "options")

    def __init__(self, type: str, name: str | None, options: dict[str, str | list[str]] | None = None) -> None:
        self.type = type
        self.name = name
        self.options: dict[str, str | list[str]] = {} if options is None else options

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Section) and (self.type, self.name, self.options)
                == (other.type, other.name, other.options))

    def __repr__(self) -> str:
        return f"Section(type={self.type!r}, name={self.name!r}, options={self.options!r})"


def parse_uci(text: str, source: str = "<uci>") -> list[Section]:
    """Parse UCI text into sections, in file order."""
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), 1):
        words = _split(raw, source, number)
        if words:
            _apply(words, sections, f"{source}:{number}")
    return sections


def load_uci(path: str) -> list[Section]:
    with open(path, encoding="utf-8") as handle:
        return parse_uci(handle.read(), path)


def _split(line: str, source: str, number: int) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError as exc:
        raise UciError(f"{source}:{number}: {exc}") from None


def _apply(words: list[str], sections: list[Section], where: str) -> None:
    keyword = words[0]
    if keyword == "package":
        return
    if keyword == "config":
        if len(words) not in (2, 3):
            raise UciError(f"{where}: expected: config TYPE ['NAME']")
        sections.append(Section(words[1], words[2] if len(words) == 3 else None))
        return
    if keyword not in ("option", "list"):
        raise UciError(f"{where}: unknown keyword {keyword!r} (expected config, option or list)")
    if len(words) != 3:
        raise UciError(f"{where}: expected: {keyword} NAME 'VALUE'")
    if not sections:
        raise UciError(f"{where}: {keyword} before any config section")
    _set(sections[-1], keyword, words[1], words[2])


def _set(section: Section, keyword: str, name: str, value: str) -> None:
    if keyword == "option":
        section.options[name] = value
        return
    current = section.options.get(name)
    if isinstance(current, list):
        current.append(value)
    else:
        section.options[name] = [value]
