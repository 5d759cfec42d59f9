"""The package database of one run: feed entries merged with status entries
(libopkg/pkg_hash.c, pkg.c), and the status/info files on disk."""
from __future__ import annotations

import dataclasses
import errno
import functools
import gzip
import hashlib
import os
import zlib
from collections.abc import Callable, Iterator

from .conf import Config, Dest, Feed
from .control import (
    CompoundDep,
    compare_versions,
    depends_text,
    parse_depends,
    parse_name_list,
    parse_stanzas,
)
from .messages import Messages

INSTALLED_STATES = ("installed", "unpacked")
# pkg_state_flag_map order; only these survive in the status file
FLAG_ORDER = ("ok", "reinstreq", "hold", "replace", "noprune", "prefer", "obsolete", "user")
NONVOLATILE_FLAGS = ("hold", "noprune", "prefer", "obsolete", "user")


@dataclasses.dataclass(eq=False)
class Pkg:
    """One package version, from a feed index, a status file, or both."""

    name: str
    version: str
    fields: dict[str, str]
    arch: str | None = None
    src: Feed | None = None
    dest: Dest | None = None
    state_want: str = "unknown"
    state_flags: set[str] = dataclasses.field(default_factory=set)
    state_status: str = "not-installed"
    auto_installed: bool = False
    installed_time: int | None = None
    conffiles: list[list[str | None]] = dataclasses.field(default_factory=list)
    local_filename: str | None = None
    tmp_unpack_dir: str | None = None
    is_upgrade: bool = False
    depends: list[CompoundDep] = dataclasses.field(default_factory=list)
    provides: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Pkg:
        pkg = cls(name=fields.get("Package", ""), version=fields.get("Version", ""),
                  fields=dict(fields), arch=fields.get("Architecture"))
        pkg.depends = parse_depends(fields.get("Depends"))
        pkg.provides = parse_name_list(fields.get("Provides"))
        return pkg

    @property
    def is_installed(self) -> bool:
        """Installed or unpacked: what opkg's *_installed_by_name() accept."""
        return self.state_status in INSTALLED_STATES

    @property
    def installed_size(self) -> int:
        """Installed-Size as opkg-lede holds it: strtoul() kept in a C int
        (32 bits) and read back as an unsigned long (64 bits, sign-extended).
        A multiple of 4 GiB becomes 0 (no space check at all); a low word
        with its top bit set becomes nearly 2**64."""
        value = min(_int(self.fields.get("Installed-Size")), ULONG_MAX) & 0xFFFFFFFF
        return value + (ULONG_MAX + 1 - 2**32) if value & 0x80000000 else value

    @property
    def size(self) -> int:
        return _int(self.fields.get("Size"))

    @property
    def essential(self) -> bool:
        return self.fields.get("Essential", "").lower() == "yes"

    def flag_text(self) -> str:
        """pkg_state_flag_to_str(): nonvolatile flags, or "ok"."""
        flags = [f for f in FLAG_ORDER if f in self.state_flags and f in NONVOLATILE_FLAGS]
        return ",".join(flags) or "ok"

    def status_text(self) -> str:
        return f"{self.state_want} {self.flag_text()} {self.state_status}"


ULONG_MAX = 2**64 - 1


def _int(text: str | None) -> int:
    try:
        return int((text or "0").strip())
    except ValueError:
        return 0


class PackageDB:
    """All packages known to this run (opkg's pkg_hash)."""

    def __init__(self, conf: Config, msgs: Messages) -> None:
        self.conf = conf
        self.msgs = msgs
        self.pkgs: list[Pkg] = []
        self.by_name: dict[str, list[Pkg]] = {}
        self.file_owner: dict[str, Pkg] = {}

    # -- loading ----------------------------------------------------------

    def load_feeds(self) -> None:
        """pkg_hash_load_feeds(): every existing list file in lists_dir."""
        for feed in self.conf.feeds:
            path = f"{self.list_dir()}/{feed.name}"
            if os.path.exists(path):
                for fields in parse_stanzas(self._read_list(path, feed)):
                    self._add(fields, src=feed)

    def load_status(self) -> None:
        """pkg_hash_load_status_files(): DEST/usr/lib/opkg/status of each dest."""
        for dest in self.conf.dests:
            if not os.path.exists(dest.status_file):
                continue
            try:
                with open(dest.status_file, encoding="utf-8", errors="replace") as handle:
                    text = handle.read()
            except OSError as exc:
                self.msgs.perror("pkg_hash_add_from_file", f"Failed to open {dest.status_file}",
                                 exc.errno or errno.EIO)
                continue
            for fields in parse_stanzas(text):
                self._add(fields, dest=dest)

    def list_dir(self) -> str:
        return self.conf.lists_dir

    def _read_list(self, path: str, feed: Feed) -> str:
        with open(path, "rb") as handle:
            blob = handle.read()
        if not feed.gzip and not blob.startswith(b"\x1f\x8b"):
            return blob.decode("utf-8", errors="replace")
        try:
            return gzip.decompress(blob).decode("utf-8", errors="replace")
        except (OSError, EOFError, zlib.error):
            # GUESS: real opkg's gzip reader yields no packages here; say why.
            self.msgs.error("pkg_hash_add_from_file",
                            f"Failed to read {path}: not a valid gzip stream, ignoring it.\n")
            return ""

    def _add(self, fields: dict[str, str], src: Feed | None = None, dest: Dest | None = None) -> None:
        if not fields.get("Package"):
            return
        pkg = Pkg.from_fields(fields)
        pkg.src, pkg.dest = src, dest
        if dest is not None:
            _apply_status_fields(pkg, fields)
        if not self.conf.arch_priority(pkg.arch):
            self.msgs.notice(f"Package {pkg.name} version {pkg.version} has no valid architecture, ignoring.\n")
            return
        self.insert(pkg, from_status=dest is not None)

    def insert(self, pkg: Pkg, from_status: bool = False) -> Pkg:
        """hash_insert_pkg(): merge with an equal name/version/arch entry."""
        same = self.by_name.setdefault(pkg.name, [])
        for old in same:
            if old.version == pkg.version and old.arch == pkg.arch:
                _merge(old, pkg, from_status)
                return old
        same.append(pkg)
        self.pkgs.append(pkg)
        return pkg

    def build_file_owners(self) -> None:
        """pkg_info_preinstall_check(): who owns which file (from .list files)."""
        for pkg in self.installed():
            for path in self.installed_files(pkg):
                self.file_owner[self.strip_root(path)] = pkg

    # -- queries ----------------------------------------------------------

    def installed(self) -> list[Pkg]:
        """All installed or unpacked packages, in database order."""
        return [pkg for pkg in self.pkgs if pkg.is_installed]

    def installed_by_name(self, name: str, dest: Dest | None = None) -> Pkg | None:
        for pkg in self.by_name.get(name, []):
            if pkg.is_installed and (dest is None or pkg.dest is dest):
                return pkg
        return None

    def providers(self, name: str) -> list[Pkg]:
        """Packages named ``name`` plus packages that Provide it."""
        named = list(self.by_name.get(name, []))
        return named + [p for p in self.pkgs if name in p.provides and p not in named]

    def best_candidate(self, name: str, accept: Callable[[Pkg], bool],
                       check_unresolved: bool = False) -> Pkg | None:
        """pkg_hash_fetch_best_installation_candidate(), simplified: highest
        version (then arch priority) among accepted providers, preferring
        those actually named ``name``; with ``check_unresolved`` a candidate
        whose dependencies cannot be resolved is dropped with opkg's errors."""
        matching = []
        for pkg in self.providers(name):
            if check_unresolved and self.report_unresolved(pkg):
                continue
            matching.append(pkg)
        if not matching:
            return None
        accepted = [p for p in matching if accept(p)]
        named = [p for p in accepted if p.name == name] or accepted
        if not named:
            return None
        return max(named, key=_sort_key(self.conf))

    def report_unresolved(self, pkg: Pkg) -> bool:
        """pkg_hash_check_unresolved(): collect errors for deps nothing satisfies."""
        unresolved = self.unresolved_deps(pkg, set())
        for text in unresolved:
            self.msgs.error("pkg_hash_check_unresolved", f"cannot find dependency {text} for {pkg.name}\n")
        return bool(unresolved)

    def unresolved_deps(self, pkg: Pkg, seen: set[str]) -> list[str]:
        """Dependency strings of ``pkg`` (recursively) that nothing satisfies."""
        if pkg.name in seen:
            return []
        seen.add(pkg.name)
        lost: list[str] = []
        for compound in pkg.depends:
            if self.installed_satisfier(compound):
                continue
            satisfier = self.available_satisfier(compound)
            if satisfier is None:
                lost.append(_compound_str(compound))
            elif satisfier is not pkg:
                lost.extend(self.unresolved_deps(satisfier, seen))
        return lost

    def installed_satisfier(self, compound: CompoundDep) -> Pkg | None:
        for dep in compound:
            found = self.best_candidate(dep.name, lambda p, d=dep: p.is_installed and d.satisfied_by(p.version))
            if found is not None:
                return found
        return None

    def available_satisfier(self, compound: CompoundDep) -> Pkg | None:
        for dep in compound:
            found = self.best_candidate(dep.name, lambda p, d=dep: d.satisfied_by(p.version))
            if found is not None:
                return found
        return None

    def dependents(self, pkg: Pkg) -> list[Pkg]:
        """Installed (not merely unpacked) packages depending on ``pkg``."""
        names = {pkg.name, *pkg.provides}
        found = []
        for other in self.pkgs:
            if other.state_status != "installed" or other is pkg or other in found:
                continue
            if any(dep.name in names for compound in other.depends for dep in compound):
                found.append(other)
        return found

    # -- files ------------------------------------------------------------

    def strip_root(self, path: str) -> str:
        root = self.conf.offline_root
        return path[len(root):] if root and path.startswith(root) else path

    def root_path(self, path: str) -> str:
        """A path from a .list file or conffile entry, on the host."""
        root = self.conf.offline_root
        return path if not root or path.startswith(root) else root + path

    def installed_files(self, pkg: Pkg) -> list[str]:
        """Host paths of the files in DEST/usr/lib/opkg/info/PKG.list."""
        assert pkg.dest is not None
        path = f"{pkg.dest.info_dir}/{pkg.name}.list"
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines = [line.rstrip("\n") for line in handle if line.strip()]
        except OSError:
            return []
        return [self.root_path(line) for line in lines]

    def write_status_files(self) -> None:
        """opkg_conf_write_status_files(): rewrite every dest's status file."""
        by_dest: dict[str, list[str]] = {dest.name: [] for dest in self.conf.dests}
        for pkg in self.pkgs:
            if pkg.state_status == "not-installed" and (
                pkg.state_want in ("unknown", "purge")
                or (pkg.state_want == "deinstall" and "hold" not in pkg.state_flags)
            ):
                continue
            if pkg.dest is None:
                self.msgs.error("opkg_conf_write_status_files",
                                f"Internal error: package {pkg.name} has a NULL dest\n")
                continue
            by_dest[pkg.dest.name].append(status_stanza(pkg))
        for dest in self.conf.dests:
            try:
                with open(dest.status_file, "w", encoding="utf-8") as handle:
                    handle.write("".join(by_dest[dest.name]))
            except OSError as exc:
                self.msgs.perror("opkg_conf_write_status_files",
                                 f"Can't open status file {dest.status_file}", exc.errno or errno.EIO)


def _sort_key(conf: Config) -> Callable[[Pkg], object]:
    """Order by version, then architecture priority (opkg's vec sort)."""
    def cmp(a: Pkg, b: Pkg) -> int:
        return compare_versions(a.version, b.version) or (
            conf.arch_priority(a.arch) - conf.arch_priority(b.arch))
    return functools.cmp_to_key(cmp)


def _compound_str(compound: CompoundDep) -> str:
    return " | ".join(str(dep) for dep in compound)


def _apply_status_fields(pkg: Pkg, fields: dict[str, str]) -> None:
    want, flags, status = (fields.get("Status", "").split() + ["", "", ""])[:3]
    pkg.state_want = want or "unknown"
    pkg.state_flags = {f for f in flags.split(",") if f and f != "ok"}
    pkg.state_status = status or "not-installed"
    pkg.auto_installed = fields.get("Auto-Installed", "").lower() == "yes"
    pkg.installed_time = _int(fields.get("Installed-Time")) or None
    pkg.conffiles = [line.split()[:2] + [None] * (2 - len(line.split()[:2]))
                     for line in fields.get("Conffiles", "").splitlines() if line.strip()]


def _merge(old: Pkg, new: Pkg, from_status: bool) -> None:
    """pkg_vec_insert_merge()/pkg_merge(): fill gaps, take state from status."""
    if from_status:
        for attr in ("state_want", "state_flags", "state_status", "installed_time", "dest"):
            setattr(old, attr, getattr(new, attr))
        old.auto_installed = old.auto_installed or new.auto_installed
        old.conffiles = old.conffiles or new.conffiles
    old.src = old.src or new.src
    old.dest = old.dest or new.dest
    for key, value in new.fields.items():
        old.fields.setdefault(key, value)
    old.depends = old.depends or new.depends
    old.provides = old.provides or new.provides


def status_stanza(pkg: Pkg) -> str:
    """pkg_print_status(): the stanza opkg writes to a status file."""
    lines = [f"Package: {pkg.name}", f"Version: {pkg.version}"]
    if pkg.depends:
        lines.append(f"Depends: {depends_text(pkg.depends)}")
    for field in ("Provides", "Replaces", "Conflicts"):
        if pkg.fields.get(field):
            lines.append(f"{field}: {pkg.fields[field]}")
    lines.append(f"Status: {pkg.status_text()}")
    if pkg.essential:
        lines.append("Essential: yes")
    if pkg.arch:
        lines.append(f"Architecture: {pkg.arch}")
    lines.extend(_conffile_lines(pkg))
    if pkg.installed_time:
        lines.append(f"Installed-Time: {pkg.installed_time}")
    if pkg.auto_installed:
        lines.append("Auto-Installed: yes")
    return "\n".join(lines) + "\n\n"


def info_stanza(pkg: Pkg) -> str:
    """pkg_formatted_info(): the stanza of ``opkg status``/``opkg info``."""
    f = pkg.fields
    lines = [f"Package: {pkg.name}", f"Version: {pkg.version}"]
    if pkg.depends:
        lines.append(f"Depends: {depends_text(pkg.depends)}")
    for field in ("Recommends", "Suggests", "Provides", "Replaces", "Conflicts"):
        if f.get(field):
            lines.append(f"{field}: {f[field]}")
    lines.append(f"Status: {pkg.status_text()}")
    if f.get("Section"):
        lines.append(f"Section: {f['Section']}")
    if pkg.essential:
        lines.append("Essential: yes")
    if pkg.arch:
        lines.append(f"Architecture: {pkg.arch}")
    for field, label in (("Maintainer", "Maintainer"), ("MD5Sum", "MD5Sum")):
        if f.get(field):
            lines.append(f"{label}: {f[field]}")
    if pkg.size:
        lines.append(f"Size: {pkg.size}")
    if f.get("Filename"):
        lines.append(f"Filename: {f['Filename']}")
    lines.extend(_conffile_lines(pkg))
    if f.get("Source"):
        lines.append(f"Source: {f['Source']}")
    if f.get("Description"):
        lines.append(f"Description: {f['Description']}")
    if pkg.installed_time:
        lines.append(f"Installed-Time: {pkg.installed_time}")
    if f.get("Tags"):
        lines.append(f"Tags: {f['Tags']}")
    return "\n".join(lines) + "\n\n"


def _conffile_lines(pkg: Pkg) -> Iterator[str]:
    listed = [(name, value) for name, value in pkg.conffiles if name and value]
    if listed:
        yield "Conffiles:"
        for name, value in listed:
            yield f" {name} {value}"


def file_checksum(path: str, like: str | None = None) -> str | None:
    """sha256 of a file (md5 when ``like`` is a 32-digit md5), None if unreadable."""
    algo = hashlib.md5 if like is not None and len(like) <= 33 else hashlib.sha256
    try:
        with open(path, "rb") as handle:
            return algo(handle.read()).hexdigest()
    except OSError:
        return None


def conffile_modified(db: PackageDB, name: str, value: str | None) -> bool:
    """conffile_has_been_modified(): checksum differs from the recorded one."""
    if value is None:
        return False
    current = file_checksum(db.root_path(name), like=value)
    return current is not None and current != value


