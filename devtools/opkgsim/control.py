"""Control stanzas, versions and dependency expressions (libopkg/pkg.c,
pkg_depends.c, pkg_parse.c)."""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from typing import Tuple

# constraint tokens as parsed by parseDepends() -> canonical operator
_CONSTRAINTS = (("<<", "<<"), ("<=", "<="), (">=", ">="), (">>", ">>"),
                ("=", "="), ("<", "<="), (">", ">="))
# constraint_to_str() in opkg-lede (note "<<" prints as "< ", ">>" as "> ")
_CONSTRAINT_TEXT = {"<<": "< ", "<=": "<= ", "=": "= ", ">=": ">= ", ">>": "> "}


# -- stanzas ---------------------------------------------------------------


def parse_stanzas(text: str) -> Iterator[dict[str, str]]:
    """Yield each ``Field: value`` stanza of a Packages/status/control text.

    Continuation lines (starting with a space) are appended with a newline.
    Lines that are neither are ignored, like opkg's lenient parser.
    """
    fields: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, None
        elif line[0] in " \t":
            if last is not None:
                fields[last] += "\n" + line
        elif ":" in line:
            last, _, value = line.partition(":")
            fields[last] = value.strip()
    if fields:
        yield fields


# -- versions --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Version:
    """An opkg version: ``[epoch:]upstream[-revision]``."""

    epoch: int
    upstream: str
    revision: str

    @classmethod
    def parse(cls, text: str) -> Version:
        text = text.strip()
        epoch = 0
        head, sep, tail = text.partition(":")
        if sep and head.isdigit():
            epoch, text = int(head), tail
        upstream, sep, revision = text.rpartition("-")
        if not sep:
            upstream, revision = text, ""
        return cls(epoch, upstream, revision)

    def __str__(self) -> str:
        text = f"{self.upstream}-{self.revision}" if self.revision else self.upstream
        return f"{self.epoch}:{text}" if self.epoch else text


def _order(char: str) -> int:
    if char == "~":
        return -1
    if not char or char.isdigit():
        return 0
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def verrevcmp(val: str, ref: str) -> int:
    """dpkg's version-part comparison, as in opkg's pkg.c."""
    i = j = 0
    while i < len(val) or j < len(ref):
        first_diff = 0
        while (i < len(val) and not val[i].isdigit()) or (j < len(ref) and not ref[j].isdigit()):
            vc = _order(val[i] if i < len(val) else "")
            rc = _order(ref[j] if j < len(ref) else "")
            if vc != rc:
                return vc - rc
            i += 1
            j += 1
        while i < len(val) and val[i] == "0":
            i += 1
        while j < len(ref) and ref[j] == "0":
            j += 1
        while i < len(val) and j < len(ref) and val[i].isdigit() and ref[j].isdigit():
            if not first_diff:
                first_diff = ord(val[i]) - ord(ref[j])
            i += 1
            j += 1
        if i < len(val) and val[i].isdigit():
            return 1
        if j < len(ref) and ref[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


@functools.lru_cache(maxsize=4096)
def compare_versions(a: str, b: str) -> int:
    """<0, 0, >0 as version ``a`` is older, equal, newer than ``b``."""
    va, vb = Version.parse(a), Version.parse(b)
    if va.epoch != vb.epoch:
        return 1 if va.epoch > vb.epoch else -1
    return verrevcmp(va.upstream, vb.upstream) or verrevcmp(va.revision, vb.revision)


# -- dependencies ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Dep:
    """One possibility of a dependency: a name and an optional constraint."""

    name: str
    op: str | None = None
    version: str | None = None

    def satisfied_by(self, version: str) -> bool:
        """version_constraints_satisfied()."""
        if self.op is None or self.version is None:
            return True
        cmp = compare_versions(version, self.version)
        if cmp == 0:
            return True  # opkg accepts equal versions even for << and >>
        return {
            "<<": cmp < 0, "<=": cmp <= 0, "=": cmp == 0, ">=": cmp >= 0, ">>": cmp > 0,
        }[self.op]

    def __str__(self) -> str:
        if self.op is None:
            return self.name
        return f"{self.name} ({_CONSTRAINT_TEXT[self.op]}{self.version})"


CompoundDep = Tuple[Dep, ...]


def parse_depends(text: str | None) -> list[CompoundDep]:
    """Parse ``a, b (>= 1.0), c | d`` into compound dependencies."""
    result: list[CompoundDep] = []
    for item in (text or "").split(","):
        alternatives = tuple(dep for dep in (_parse_dep(p) for p in item.split("|")) if dep)
        if alternatives:
            result.append(alternatives)
    return result


def _parse_dep(text: str) -> Dep | None:
    text = text.strip()
    if not text:
        return None
    name, _, rest = text.partition(" ")
    name, paren, glued = name.partition("(")  # "foo(>=1)" written without a space
    rest = (paren + glued + " " + rest).strip() if paren else rest.strip()
    if not rest.startswith("("):
        return Dep(name)
    inner = rest[1:].split(")", 1)[0].strip()
    for token, op in _CONSTRAINTS:
        if inner.startswith(token):
            return Dep(name, op, inner[len(token):].strip())
    return Dep(name, "=", inner) if inner else Dep(name)


def depends_text(deps: list[CompoundDep]) -> str:
    """The ``Depends:`` value as pkg_formatted_field() prints it."""
    return ", ".join(compound_text(c) for c in deps)


def compound_text(compound: CompoundDep) -> str:
    """pkg_depend_str(): alternatives joined by `` | ``."""
    return " | ".join(str(dep) for dep in compound)


def parse_name_list(text: str | None) -> list[str]:
    """Provides/Replaces lists: names separated by commas and spaces."""
    return [word for word in (text or "").replace(",", " ").split() if word]
