"""Fast answers from opkg's own files, without spawning opkg (which would
also take opkg's lock and contend with LuCI or cron).

- Each dest's ``usr/lib/opkg/status`` lists what is installed there: control
  stanzas with ``Status: WANT FLAGS STATE`` (``install user installed``).
- ``opkg update`` stores one list file per feed in the lists dir: the feed's
  Packages index, still gzip'd for ``src/gz`` feeds (opkg-lede reads it
  through gzip), plain for ``src`` feeds.

Sizes: OpenWrt's ipkg-build writes ``Installed-Size`` in **bytes** (the
length of the uncompressed data.tar), and opkg-lede's verify_pkg_installable
converts it with ``(installed_size + 1023) / 1024`` before comparing with the
free kilobytes of the dest. required_kb rounds up the same way per package.
(Debian's Installed-Size is in KiB; opkg's is not.)
"""
from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from typing import NamedTuple

from pineapple.opkg.conf import OpkgConf

INSTALLED = "installed"
UNKNOWN_STATE = "unknown"
# States in which none of the package's files remain installed.
_GONE_STATES = frozenset({"not-installed", "config-files"})
_STATUS_FIELDS = frozenset({"Package", "Version", "Depends", "Provides", "Status",
                            "Auto-Installed", "Installed-Size"})
_LIST_FIELDS = frozenset({"Package", "Version", "Depends", "Provides", "Size",
                          "Installed-Size", "Filename", "Architecture"})
_OPERATORS = ("<<", "<=", ">=", ">>", "=", "<", ">")
# opkg reads the deprecated '<' and '>' as '<=' and '>=' (like dpkg).
_DEPRECATED_OPERATORS = {"<": "<=", ">": ">="}
_DIGITS = "0123456789"
_GZIP_MAGIC = b"\x1f\x8b"


class Dependency(NamedTuple):
    """One alternative of a Depends entry; ``op`` is one of << <= = >= >> or
    None when there is no version constraint."""

    name: str
    op: str | None = None
    version: str | None = None


class InstalledPackage(NamedTuple):
    """A package in a dest's status file. ``state`` is the last word of its
    Status line: ``installed``, or e.g. ``unpacked``/``half-installed`` for
    one whose install or configure did not finish (``unknown`` if the line
    is missing). ``want`` is the first word: ``install``, or ``deinstall``
    for a package whose removal began (an interrupted ``opkg remove`` leaves
    it ``deinstall ... installed`` with some of its files gone)."""

    name: str
    version: str
    dest: str
    state: str
    auto_installed: bool
    depends: list[list[Dependency]]
    provides: tuple[str, ...] = ()
    installed_size: int | None = None
    want: str = "install"

    @property
    def is_whole(self) -> bool:
        """Fully installed and not being removed: nothing half done."""
        return self.state == INSTALLED and self.want != "deinstall"


class AvailablePackage(NamedTuple):
    """A package offered by a feed's downloaded list."""

    name: str
    version: str
    depends: list[list[Dependency]]
    size: int | None
    installed_size: int | None
    filename: str | None
    feed: str
    architecture: str | None = None
    provides: tuple[str, ...] = ()


# ---------------------------------------------------------------- parsing


def parse_control(text: str, keep: Collection[str] | None = None) -> list[dict[str, str]]:
    """Split control text into stanzas (field → value).

    Stanzas are separated by blank lines; a line starting with a space or
    tab continues the previous field (joined with a newline). Lines that are
    neither fields nor continuations are skipped, and a trailing stanza cut
    short is returned with the fields it has. ``keep`` limits the fields
    stored, which saves time on large feed lists."""
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current, last = {}, None
        elif line[0] in " \t":
            if last is not None:
                current[last] = _continued(current[last], line[1:].rstrip())
        else:
            last = _store_field(current, line, keep)
    if current:
        stanzas.append(current)
    return stanzas


def parse_depends(value: str) -> list[list[Dependency]]:
    """Parse a Depends value: comma-separated entries, each a ``|`` list of
    alternatives like ``libc``, ``libfoo (>= 1.2)``."""
    groups = []
    for entry in value.split(","):
        alternatives = [dep for dep in map(_parse_dependency, entry.split("|")) if dep]
        if alternatives:
            groups.append(alternatives)
    return groups


def compare_versions(a: str, b: str) -> int:
    """Compare two opkg versions (``[epoch:]upstream[-revision]``) the way
    opkg and dpkg do; returns -1, 0 or 1."""
    epoch_a, upstream_a, revision_a = _split_version(a)
    epoch_b, upstream_b, revision_b = _split_version(b)
    if epoch_a != epoch_b:
        return -1 if epoch_a < epoch_b else 1
    return _compare_fragment(upstream_a, upstream_b) or _compare_fragment(revision_a, revision_b)


def _store_field(stanza: dict[str, str], line: str, keep: Collection[str] | None) -> str | None:
    key, sep, value = line.partition(":")
    key = key.strip()
    if not sep or not key or " " in key or (keep is not None and key not in keep):
        return None
    stanza[key] = value.strip()
    return key


def _continued(value: str, more: str) -> str:
    return f"{value}\n{more}" if value else more


def _parse_dependency(text: str) -> Dependency | None:
    name, _, constraint = text.partition("(")
    name = name.strip()
    if not name:
        return None
    constraint = constraint.partition(")")[0].strip()
    if not constraint:
        return Dependency(name)
    for op in _OPERATORS:
        if constraint.startswith(op):
            version = constraint[len(op):].strip()
            return Dependency(name, _DEPRECATED_OPERATORS.get(op, op), version or None)
    return Dependency(name, None, constraint)


def _split_version(version: str) -> tuple[int, str, str]:
    epoch, sep, rest = version.strip().partition(":")
    if not sep:
        epoch, rest = "0", version.strip()
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        upstream, revision = rest, ""
    return (int(epoch) if epoch.isdigit() else 0), upstream, revision


def _compare_fragment(a: str, b: str) -> int:
    """dpkg's verrevcmp: alternate non-digit runs (compared by _order) and
    digit runs (compared numerically)."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and a[i] not in _DIGITS) or (j < len(b) and b[j] not in _DIGITS):
            order_a, order_b = _order(a, i), _order(b, j)
            if order_a != order_b:
                return -1 if order_a < order_b else 1
            i, j = i + 1, j + 1
        number_a, i = _digit_run(a, i)
        number_b, j = _digit_run(b, j)
        if number_a != number_b:
            return -1 if number_a < number_b else 1
    return 0


def _order(text: str, index: int) -> int:
    if index >= len(text) or text[index] in _DIGITS:
        return 0
    char = text[index]
    if char == "~":
        return -1
    return ord(char) if char.isascii() and char.isalpha() else ord(char) + 256


def _digit_run(text: str, index: int) -> tuple[int, int]:
    end = index
    while end < len(text) and text[end] in _DIGITS:
        end += 1
    return int(text[index:end] or 0), end


# --------------------------------------------------------------- installed


def installed_packages(conf: OpkgConf) -> dict[str, InstalledPackage]:
    """Every package present in any dest's status file, by name. Packages
    recorded as ``not-installed`` or ``config-files`` are left out; a
    missing status file means nothing is installed in that dest. When a
    name appears in several dests, a fully installed entry wins, else the
    first dest's."""
    found: dict[str, InstalledPackage] = {}
    for dest, path in conf.status_paths().items():
        for stanza in parse_control(_read_text(path) or "", _STATUS_FIELDS):
            package = _installed_from(stanza, dest)
            if package is not None and _better_entry(found.get(package.name), package):
                found[package.name] = package
    return found


def which_installed(conf: OpkgConf, names: Iterable[str]) -> dict[str, str | None]:
    """For each name, the installed version, or None when the package is
    absent or not fully installed (check installed_packages() for the
    state: opkg itself calls a half-configured package "up to date")."""
    return installed_versions(installed_packages(conf), names)


def installed_versions(installed: Mapping[str, InstalledPackage], names: Iterable[str]) -> dict[str, str | None]:
    """:func:`which_installed` over an already parsed ``installed_packages``."""
    return {name: _installed_version(installed.get(name)) for name in names}


def dependents_of(installed: Mapping[str, InstalledPackage], name: str) -> list[str]:
    """Installed packages whose Depends name ``name`` or something it
    Provides: the ones opkg would refuse to leave broken when removing it.
    Like opkg, only fully installed dependents count."""
    target = installed.get(name)
    wanted = {name, *(target.provides if target else ())}
    return sorted(
        package.name for package in installed.values()
        if package.name != name and package.state == INSTALLED
        and any(dep.name in wanted for group in package.depends for dep in group)
    )


def dependency_closure(installed: Mapping[str, InstalledPackage], names: Iterable[str]) -> set[str]:
    """``names`` and, transitively, the installed packages they depend on
    (by name or by what they provide): everything an ``opkg remove
    --autoremove`` of ``names`` may take away."""
    providers: dict[str, str] = {}
    for package in installed.values():
        for provided in package.provides:
            providers.setdefault(provided, package.name)
    found: set[str] = set()
    todo = [name for name in names if name in installed]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        for group in installed[name].depends:
            for dep in group:
                target = dep.name if dep.name in installed else providers.get(dep.name)
                if target is not None and target not in found:
                    todo.append(target)
    return found


def _installed_from(stanza: Mapping[str, str], dest: str) -> InstalledPackage | None:
    name = stanza.get("Package")
    status = stanza.get("Status", "").split()
    state = status[-1] if len(status) == 3 else UNKNOWN_STATE
    if not name or state in _GONE_STATES:
        return None
    return InstalledPackage(
        name=name,
        version=stanza.get("Version", ""),
        dest=dest,
        state=state,
        auto_installed=stanza.get("Auto-Installed") == "yes",
        depends=parse_depends(stanza.get("Depends", "")),
        provides=_names(stanza.get("Provides", "")),
        installed_size=_int_or_none(stanza.get("Installed-Size")),
        want=status[0] if len(status) == 3 else UNKNOWN_STATE,
    )


def _better_entry(known: InstalledPackage | None, candidate: InstalledPackage) -> bool:
    if known is None:
        return True
    return known.state != INSTALLED and candidate.state == INSTALLED


def _installed_version(package: InstalledPackage | None) -> str | None:
    if package is None or package.state != INSTALLED:
        return None
    return package.version


# --------------------------------------------------------------- available


def available_packages(conf: OpkgConf) -> dict[str, AvailablePackage]:
    """Packages in the feeds' downloaded lists, by name; the highest
    version wins when several feeds offer one. When opkg.conf lists
    ``arch`` lines, packages for other architectures are left out. A feed
    without a list file (no ``opkg update`` yet) contributes nothing."""
    arches = {arch for arch, _ in conf.arches}
    found: dict[str, AvailablePackage] = {}
    for feed in conf.feeds:
        text = _read_list(conf.list_file(feed.name)) or ""
        for stanza in parse_control(text, _LIST_FIELDS):
            package = _available_from(stanza, feed.name)
            if package is not None and _usable_arch(package, arches) \
                    and _newer(found.get(package.name), package):
                found[package.name] = package
    return found


def lists_age(conf: OpkgConf, now: float) -> float | None:
    """Seconds since the oldest feed list was written, or None when any
    configured feed has no list (or no feed is configured): run
    ``opkg update`` first."""
    times = [_mtime(conf.list_file(feed.name)) for feed in conf.feeds]
    written = [t for t in times if t is not None]
    if not times or len(written) < len(times):
        return None
    # Clamped: a router without an RTC may write lists before NTP sets the clock.
    return max(0.0, now - min(written))


def _available_from(stanza: Mapping[str, str], feed: str) -> AvailablePackage | None:
    name = stanza.get("Package")
    if not name:
        return None
    return AvailablePackage(
        name=name,
        version=stanza.get("Version", ""),
        depends=parse_depends(stanza.get("Depends", "")),
        size=_int_or_none(stanza.get("Size")),
        installed_size=_int_or_none(stanza.get("Installed-Size")),
        filename=stanza.get("Filename"),
        feed=feed,
        architecture=stanza.get("Architecture"),
        provides=_names(stanza.get("Provides", "")),
    )


def _usable_arch(package: AvailablePackage, arches: set[str]) -> bool:
    return not arches or package.architecture is None or package.architecture in arches


def _newer(known: AvailablePackage | None, candidate: AvailablePackage) -> bool:
    return known is None or compare_versions(candidate.version, known.version) > 0


# -------------------------------------------------------------------- space


def required_kb(
    conf: OpkgConf,
    names: Iterable[str],
    installed: Mapping[str, InstalledPackage],
    available: Mapping[str, AvailablePackage] | None = None,
) -> int | None:
    """Kilobytes the packages and their not-yet-installed dependencies
    (transitively) need once installed, rounded up per package as opkg
    does. None when a package or dependency is not in the lists or has no
    Installed-Size. Installed packages (and what they Provide) count as
    satisfied whatever their version: upgrades are not estimated."""
    if available is None:
        available = available_packages(conf)
    needed = packages_to_install(names, installed, available)
    return None if needed is None else _total_kb(needed)


def free_kb(path: str) -> int:
    """Free kilobytes for unprivileged writes on the filesystem holding
    ``path`` (or its nearest existing ancestor, for a dest not created yet)."""
    stats = os.statvfs(_nearest_existing(path))
    return stats.f_bavail * stats.f_frsize // 1024


def install_plan(conf: OpkgConf, names: Iterable[str],
                 satisfied: Iterable[str]) -> tuple[list[str] | None, int | None]:
    """What an install of ``names`` will add (names, in order; None when the
    lists cannot satisfy them) and the kilobytes that needs (None when
    unknown: as :func:`required_kb`), from one parse of the feed lists.
    ``satisfied``: :func:`provided_names` of the installed packages."""
    needed = _plan(names, set(satisfied), available_packages(conf))
    if needed is None:
        return None, None
    return [package.name for package in needed], _total_kb(needed)


def packages_to_install(
    names: Iterable[str],
    installed: Mapping[str, InstalledPackage],
    available: Mapping[str, AvailablePackage],
) -> list[AvailablePackage] | None:
    """The packages an install of ``names`` will add (the names and their
    missing dependencies, transitively), or None when the lists cannot
    satisfy them."""
    return _plan(names, provided_names(installed.values()), available)


def _plan(names: Iterable[str], satisfied: set[str],
          available: Mapping[str, AvailablePackage]) -> list[AvailablePackage] | None:
    providers = _providers(available)
    chosen: dict[str, AvailablePackage] = {}
    todo = [name for name in names if name not in satisfied]
    while todo:
        name = todo.pop()
        if name in satisfied:
            continue
        package = available.get(name) or providers.get(name)
        if package is None:
            return None
        chosen[package.name] = package
        satisfied.update((name, package.name, *package.provides))
        for group in package.depends:
            pick = _unsatisfied_pick(group, satisfied, available, providers)
            if pick is None:
                return None
            if pick:
                todo.append(pick)
    return list(chosen.values())


def _unsatisfied_pick(group: list[Dependency], satisfied: set[str],
                      available: Mapping[str, AvailablePackage],
                      providers: Mapping[str, AvailablePackage]) -> str | None:
    """'' when an alternative is already satisfied, else the first one the
    feeds offer; None when none of them can be had."""
    if any(dep.name in satisfied for dep in group):
        return ""
    for dep in group:
        if dep.name in available or dep.name in providers:
            return dep.name
    return None


def provided_names(packages: Iterable[InstalledPackage]) -> set[str]:
    """The names the packages satisfy a dependency on: theirs and what they
    Provide (whatever their state and version)."""
    names: set[str] = set()
    for package in packages:
        names.add(package.name)
        names.update(package.provides)
    return names


def _providers(available: Mapping[str, AvailablePackage]) -> dict[str, AvailablePackage]:
    providers: dict[str, AvailablePackage] = {}
    for package in available.values():
        for virtual in package.provides:
            providers.setdefault(virtual, package)
    return providers


def _total_kb(packages: list[AvailablePackage]) -> int | None:
    """Their Installed-Size in KiB, rounded up per package; None if one has none."""
    sizes = [package.installed_size for package in packages]
    if any(size is None for size in sizes):
        return None
    return sum(_kb(size) for size in sizes if size is not None)


def _kb(size_bytes: int) -> int:
    return (size_bytes + 1023) // 1024


def _nearest_existing(path: str) -> str:
    current = os.path.abspath(path)
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


# --------------------------------------------------------------------- files


def _read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return None


def _read_list(path: str) -> str | None:
    """A feed list, decompressed when gzip'd; a truncated gzip yields what
    could be read (parse_control copes with a cut-off last stanza)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if data.startswith(_GZIP_MAGIC):
        data = _gunzip(data)
    return data.decode("utf-8", errors="replace")


def _gunzip(data: bytes) -> bytes:
    import zlib  # only gzip'd lists need it

    decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
    try:
        return decompressor.decompress(data)
    except zlib.error:
        return b""


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _names(value: str) -> tuple[str, ...]:
    """Package names of a Provides value, without version constraints."""
    return tuple(dep.name for group in parse_depends(value) for dep in group)


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None
