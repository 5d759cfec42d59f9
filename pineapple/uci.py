"""A reader for OpenWrt's UCI configuration files that accepts what libuci accepts.

    config daemon 'main'
        option socket '/var/run/pineapple-jobd.sock'
        list allowed_uids '1000'

gives ``[Section(type="daemon", name="main", options={"socket": "...", "allowed_uids": ["1000"]})]``.
``option`` values are strings, ``list`` values lists of strings, and every
option remembers the line it was set on (:meth:`Section.where`), so a bad
value can be reported as ``/etc/config/pineapple-jobd:12``.

The syntax is libuci's (openwrt/uci ``file.c``; every rule below was also
checked against the real ``uci`` program, see docs/config.md):

- A line holds commands separated by ``;``: ``package NAME``, ``config TYPE
  [NAME]``, ``option NAME [VALUE]``, ``list NAME [VALUE]`` (or the
  abbreviations ``p``, ``c``, ``o``, ``l``). The keyword itself is a plain
  word up to the next space or tab.
- Arguments are words separated by white space. Single quotes keep
  everything literally, newlines included (a value may span lines). Double
  quotes too, except that a backslash takes the next character literally.
  Quoted and unquoted parts join into one word (``a'b'"c"`` is ``abc``).
- Outside single quotes a backslash at the end of a line joins the next
  line to the current word; if that line starts with white space the word
  ends there (an indented line after ``'x' \\`` reads as further commands).
- An unquoted ``#`` ends the line (also inside a word: ``a#b`` is ``a``).
  A ``;`` straight after an unquoted, unescaped word drops the rest of the
  line (libuci overwrites it); after a quoted word the next command follows.
- Section names and option names are letters, digits and ``_``; types any
  printable ASCII but space; ``package`` lines are accepted and ignored.
- ``option NAME ''`` changes nothing (it neither sets nor removes the
  option); ``option`` replaces a list, ``list`` after an ``option`` turns
  it into a list with the old value first; a second ``config`` with the same
  name adds to the first section (a different type is an error); more
  arguments than a command takes are an error.
"""
from __future__ import annotations

_SPACE = " \t\n\v\f\r"  # C isspace() in the "C" locale (str.isspace knows more)
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_KEYWORDS = {"package": "package", "p": "package", "config": "config", "c": "config",
             "option": "option", "o": "option", "list": "list", "l": "list"}


# The daemon's own config file; clients read its socket option from it too.
JOBD_CONFIG_PATH = "/etc/config/pineapple-jobd"


class UciError(ValueError):
    """A syntax error, with the file and line number in the message."""


class Section:
    """One ``config TYPE 'NAME'`` block (a plain class: no ``dataclasses`` import).

    ``name`` is None for an anonymous section; ``line`` is where it starts.
    """

    __slots__ = ("type", "name", "options", "line", "_lines")

    def __init__(self, type: str, name: str | None, options: dict[str, str | list[str]] | None = None,
                 line: int | None = None) -> None:
        self.type = type
        self.name = name
        self.options: dict[str, str | list[str]] = {} if options is None else options
        self.line = line
        self._lines: dict[str, list[int]] = {}

    def where(self, option: str, index: int | None = None) -> int | None:
        """The line ``option`` was set on (for a list, item ``index``, else
        its first item); None when unknown."""
        lines = self._lines.get(option)
        if not lines:
            return None
        if index is not None and 0 <= index < len(lines):
            return lines[index]
        return lines[0]

    def set(self, name: str, value: str, line: int | None = None) -> None:
        """``option NAME VALUE``: replaces a string or a list."""
        self.options[name] = value
        self._lines[name] = [line] if line is not None else []

    def add(self, name: str, value: str, line: int | None = None) -> None:
        """``list NAME VALUE``: appends; a string value becomes the first item."""
        current = self.options.get(name)
        if isinstance(current, list):
            current.append(value)
        else:
            self.options[name] = [value] if current is None else [current, value]
        if line is not None:
            self._lines.setdefault(name, []).append(line)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Section) and (self.type, self.name, self.options)
                == (other.type, other.name, other.options))

    def __repr__(self) -> str:
        return f"Section(type={self.type!r}, name={self.name!r}, options={self.options!r})"


def parse_uci(text: str, source: str = "<uci>") -> list[Section]:
    """Parse UCI text into sections, in file order (a repeated named section
    stays where it first appeared)."""
    return _Parser(text, source).parse()


def load_uci(path: str) -> list[Section]:
    """Parse the UCI file at ``path``. Bytes that are not UTF-8 are kept as
    surrogate escapes (libuci takes any bytes)."""
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        return parse_uci(handle.read(), path)


class _Parser:
    """libuci's reading rules over a buffer that holds the current line and
    the lines a quote or a trailing backslash pulled in."""

    def __init__(self, text: str, source: str) -> None:
        pieces = text.split("\n")
        self._physical = [piece + "\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
        self._source = source
        self._next = 0      # index of the next physical line to read
        self.line = 0       # number of the last line read (1-based)
        self.buf = ""
        self.pos = 0
        self.sections: list[Section] = []
        self._named: dict[str, Section] = {}
        self._current: Section | None = None

    # ------------------------------------------------------------ reading
    def parse(self) -> list[Section]:
        while self._next < len(self._physical):
            self.pos = 0
            self._fetch(0)
            self._commands()
        return self.sections

    def _fetch(self, keep: int) -> bool:
        """Replace the buffer from ``keep`` on with the next line (at the end
        of the file the buffer is only cut there)."""
        self.buf = self.buf[:keep]
        if self._next >= len(self._physical):
            return False
        self.buf += self._physical[self._next]
        self._next += 1
        self.line = self._next
        return True

    @property
    def _char(self) -> str:
        return self.buf[self.pos] if self.pos < len(self.buf) else ""

    def _error(self, reason: str) -> UciError:
        return UciError(f"{self._source}:{self.line}: {reason}")

    def _skip_space(self) -> None:
        while self._char and self._char in _SPACE:
            self.pos += 1

    # ----------------------------------------------------------- commands
    def _commands(self) -> None:
        self._skip_space()
        while True:
            while self._char in (" ", "\t"):
                self.pos += 1
            if not self._char:
                return
            end = self.pos
            while end < len(self.buf) and self.buf[end] not in " \t":
                end += 1
            word, line = self.buf[self.pos:end], self.line
            if word.startswith("#"):
                return
            keyword = _KEYWORDS.get(word)
            if keyword is None:
                raise self._error(f"invalid command {word.strip()!r} (expected config, option, list or package)")
            if keyword in ("option", "list") and self._current is None:
                raise self._error(f"{keyword} before the first config section")
            if end + 1 > len(self.buf):
                raise self._error(f"{'option' if keyword == 'list' else keyword} without name")
            self.pos = end + 1
            getattr(self, f"_{keyword}")(line)

    def _package(self, line: int) -> None:
        self._argument(required=True, what="package name")
        self._end_of_command()

    def _config(self, line: int) -> None:
        kind = self._argument(required=True)
        if any(not 33 <= ord(ch) <= 126 for ch in kind):
            raise self._error(f"invalid character in section type {kind!r}")
        name = self._argument(required=False, what="section name")
        self._end_of_command()
        section = self._named.get(name) if name else None
        if section is not None:
            if section.type != kind:
                raise self._error(f"config {kind} '{name}': a section '{name}' of type {section.type!r} "
                                  "exists already (a section of another type cannot replace it)")
        else:
            section = Section(kind, name or None, line=line)
            self.sections.append(section)
            if name:
                self._named[name] = section
        self._current = section

    def _option(self, line: int) -> None:
        name = self._argument(required=True, what="option name")
        value = self._argument(required=False)
        self._end_of_command()
        if value:  # libuci: `option NAME ''` while reading a file changes nothing
            self._current.set(name, value, line)  # type: ignore[union-attr]

    def _list(self, line: int) -> None:
        name = self._argument(required=True, what="option name")
        value = self._argument(required=False)
        self._end_of_command()
        self._current.add(name, value, line)  # type: ignore[union-attr]

    def _end_of_command(self) -> None:
        self._skip_space()
        extra = self._argument(required=False)
        if extra:
            raise self._error(f"too many arguments (unexpected {extra!r})")

    # ---------------------------------------------------------- arguments
    def _argument(self, required: bool, what: str | None = None) -> str:
        self._skip_space()
        if self._char == ";":
            self.pos += 1
            value = ""
        else:
            value = self._word()
        if not value:
            if required:
                raise self._error(f"missing {what or 'argument'}")
            return ""
        if what is not None:
            allowed = _NAME_CHARS | {"-"} if what == "package name" else _NAME_CHARS
            if any(ch not in allowed for ch in value):
                raise self._error(f"invalid character in {what} {value!r} (letters, digits and _ only)")
        return value

    def _word(self) -> str:
        out: list[str] = []
        verbatim = True  # every character read so far was kept (nothing quoted or escaped)
        semicolon = False
        while True:
            char = self._char
            if char == "'":
                self._quoted(out, "'")
                verbatim = False
            elif char == '"':
                self._quoted(out, '"')
                verbatim = False
            elif char == "#":
                self.buf = self.buf[:self.pos]
                break
            elif not char:
                break
            elif char == ";":
                semicolon = True
                break
            elif char == "\\":
                verbatim = False
                if self._backslash():
                    out.append(self._char)
                    self.pos += 1
            else:
                out.append(char)
                self.pos += 1
            if not self._char or self._char in _SPACE:
                break
        if semicolon:
            if verbatim:  # libuci's terminator lands on the ';': the rest of the line is gone
                self.buf = self.buf[:self.pos]
        elif self._char:
            self.pos += 1
        return "".join(out)

    def _quoted(self, out: list[str], quote: str) -> None:
        self.pos += 1
        while True:
            char = self._char
            if char == quote:
                self.pos += 1
                return
            if not char:  # the value goes on on the next line
                self._fetch(self.pos)
                if not self._char:
                    raise self._error(f"end of file inside a {quote}-quoted value")
                continue
            if char == "\\" and quote == '"':
                if not self._backslash():
                    continue
            out.append(self._char)
            self.pos += 1

    def _backslash(self) -> bool:
        """Skip a backslash: False when it ends the line (the next line is
        joined on), True when the character after it is to be taken."""
        self.pos += 1
        if self.buf[self.pos:] in ("", "\n", "\r\n"):
            self._fetch(self.pos)
            return False
        return True


def last_option(sections: list[Section], section_type: str, option: str) -> str | None:
    """The value of ``option`` in the last section of ``section_type`` that
    sets it as a string (UCI's later-wins rule), or None."""
    value = None
    for section in sections:
        found = section.options.get(option) if section.type == section_type else None
        if isinstance(found, str):
            value = found
    return value

