"""Reading opkg's configuration the way opkg-lede does, without running opkg.

What opkg-lede does (libopkg/opkg_conf.c, src/opkg-cl.c):

- Without ``-f`` and without ``-o`` it reads ``/etc/opkg.conf``; with ``-o
  ROOT`` and no ``-f`` it reads no main file at all.
- Then, always, every ``*.conf`` in ``/etc/opkg`` (``ROOT/etc/opkg`` under an
  offline root), in sorted order, skipping the main file if it matches.
- Lines: ``src[/gz] NAME URL``, ``dest NAME PATH``, ``lists_dir NAME DIR``,
  ``arch NAME PRIO`` (priority 10 when missing), ``option NAME [VALUE]``.
  Blank lines and lines starting with ``#`` are skipped; a token may be
  double-quoted; a line with more than four tokens is ignored ("trailing
  garbage"), so a ``#`` comment after a directive voids the whole line.
- The first ``src`` of a name wins, the last ``lists_dir`` wins, a string
  option keeps its first value, and a boolean option is switched on by any
  mention, even ``option force_depends 0``.
- Without a ``dest`` line there is one dest, ``root`` at ``/``; without a
  ``lists_dir`` line the lists live in ``/usr/lib/opkg/lists`` (opkg-lede's
  built-in default; OpenWrt's stock opkg.conf sets ``/var/opkg-lists``).
- Under an offline root, dest paths, the lists dir and the lock file are all
  inside ROOT, and ``option offline_root`` in the main file acts like ``-o``.
"""
from __future__ import annotations

import os
from typing import NamedTuple

from pineapple.record import Record

DEFAULT_CONF = "/etc/opkg.conf"
DEFAULT_CONF_DIR = "/etc/opkg"
DEFAULT_LISTS_DIR = "/usr/lib/opkg/lists"
DEFAULT_DEST = "root"
LOCK_FILE = "/var/lock/opkg.lock"
STATE_DIR = "usr/lib/opkg"  # inside each dest: status and info/
DEFAULT_ARCH_PRIORITY = 10
_MAX_TOKENS = 4


class Feed(NamedTuple):
    """A package source: ``src/gz`` feeds fetch Packages.gz, ``src`` Packages."""

    name: str
    url: str
    gz: bool


class OpkgConf(Record):
    """opkg's configuration; paths as written, resolved by the methods.

    ``arches`` is empty when no ``arch`` line exists: opkg then accepts
    ``all``, ``noarch`` and the CPU it was built for."""

    def __init__(self, feeds: list[Feed] | None = None, dests: dict[str, str] | None = None,
                 lists_dir: str = DEFAULT_LISTS_DIR, arches: list[tuple[str, int]] | None = None,
                 options: dict[str, str] | None = None, offline_root: str | None = None,
                 files: list[str] | None = None) -> None:
        self.feeds: list[Feed] = feeds if feeds is not None else []
        self.dests: dict[str, str] = dests if dests is not None else {}
        self.lists_dir = lists_dir
        self.arches: list[tuple[str, int]] = arches if arches is not None else []
        self.options: dict[str, str] = options if options is not None else {}
        self.offline_root = offline_root
        self.files: list[str] = files if files is not None else []

    def dest_path(self, name: str = DEFAULT_DEST) -> str:
        """Where dest ``name`` lives on this machine; KeyError if unknown."""
        dests = self.dests or {DEFAULT_DEST: "/"}
        return self.host_path(dests[name])

    def dest_names(self) -> list[str]:
        """Configured dest names, in order (``root`` when none is)."""
        return list(self.dests) or [DEFAULT_DEST]

    def lists_path(self) -> str:
        """The directory holding one downloaded list file per feed."""
        return self.host_path(self.lists_dir)

    def list_file(self, feed_name: str) -> str:
        """The list file ``opkg update`` writes for a feed."""
        return os.path.join(self.lists_path(), feed_name)

    def lock_path(self) -> str:
        """The file every opkg command locks (non-waiting)."""
        return self.host_path(LOCK_FILE)

    def status_paths(self) -> dict[str, str]:
        """Each dest's status file, by dest name."""
        return {name: os.path.join(self.dest_path(name), STATE_DIR, "status")
                for name in self.dest_names()}

    def info_dir(self, dest: str = DEFAULT_DEST) -> str:
        """Where a dest keeps PKG.control, PKG.list and maintainer scripts."""
        return os.path.join(self.dest_path(dest), STATE_DIR, "info")

    def space_path(self, dest: str = DEFAULT_DEST) -> str:
        """The filesystem opkg's free-space check looks at for a dest: the
        ``overlay_root`` option for ``root`` when it is a directory (used as
        written, as opkg does), else the dest itself."""
        overlay = self.options.get("overlay_root")
        if dest == DEFAULT_DEST and overlay and os.path.isdir(overlay):
            return overlay
        return self.dest_path(dest)

    def option_enabled(self, name: str) -> bool:
        """Whether a boolean option is on (any mention switches it on)."""
        return name in self.options

    def feed_names(self) -> dict[str, str]:
        """Feed URL (no trailing slash) → feed name, for output parsing."""
        return {feed.url.rstrip("/"): feed.name for feed in self.feeds}

    def host_path(self, path: str) -> str:
        """Where a path of the device (``/usr/bin/x``) is on this machine."""
        if not self.offline_root:
            return os.path.normpath(path) if path else "/"
        return os.path.normpath(f"{self.offline_root}/{path}")


def load_conf(
    path: str | None = None,
    offline_root: str | None = None,
    conf_dir: str = DEFAULT_CONF_DIR,
) -> OpkgConf:
    """Load opkg's configuration as ``opkg [-f path] [-o offline_root]`` would.

    ``conf_dir`` is where the extra ``*.conf`` files are looked for when
    there is no offline root (opkg's ``OPKG_CONF_DIR``). A missing main file
    raises FileNotFoundError, as it makes opkg itself fail."""
    if path is None and not offline_root:
        path = DEFAULT_CONF
    conf = OpkgConf(offline_root=offline_root or None)
    if path is not None:
        _read_file(conf, path)
        conf.offline_root = conf.offline_root or conf.options.get("offline_root") or None
    for extra in _conf_files_in(extra_conf_dir(conf, conf_dir)):
        if path is None or os.path.abspath(extra) != os.path.abspath(path):
            _read_file(conf, extra)
    return conf


def extra_conf_dir(conf: OpkgConf, conf_dir: str = DEFAULT_CONF_DIR) -> str:
    """The directory whose ``*.conf`` files opkg reads after the main file."""
    return f"{conf.offline_root}/etc/opkg" if conf.offline_root else conf_dir


def conf_sources(conf: OpkgConf, conf_dir: str = DEFAULT_CONF_DIR) -> list[str]:
    """Every file and directory a loaded configuration depends on: the files
    read, and the extra directory (a ``*.conf`` added there changes it)."""
    return [*conf.files, extra_conf_dir(conf, conf_dir)]


def parse_conf_text(conf: OpkgConf, text: str) -> None:
    """Apply the lines of one configuration file to ``conf``."""
    for line in text.splitlines():
        tokens = _tokens(line)
        if tokens is not None and _usable(tokens):
            _apply(conf, tokens)


def _usable(tokens: list[str]) -> bool:
    # opkg-lede ignores a line with a fifth token, except for dist lines.
    return len(tokens) >= 2 and (len(tokens) <= _MAX_TOKENS or tokens[0].startswith("dist"))


def _read_file(conf: OpkgConf, path: str) -> None:
    with open(path, encoding="utf-8", errors="replace") as handle:
        parse_conf_text(conf, handle.read())
    conf.files.append(path)


def _conf_files_in(directory: str) -> list[str]:
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    paths = (os.path.join(directory, name) for name in names
             if name.endswith(".conf") and not name.startswith("."))
    return [path for path in paths if os.path.isfile(path)]


def _apply(conf: OpkgConf, tokens: list[str]) -> None:
    kind, name = tokens[0], tokens[1]
    value = tokens[2] if len(tokens) > 2 else ""
    if kind in ("src", "src/gz"):
        _add_feed(conf, Feed(name, value, gz=kind == "src/gz"))
    elif kind == "dest" and value:
        conf.dests.setdefault(name, value)
    elif kind == "lists_dir" and value:
        conf.lists_dir = value
    elif kind == "arch":
        conf.arches.append((name, _priority(value)))
    elif kind == "option":
        conf.options.setdefault(name, value)
    # dist/dist/gz (Debian-style feeds) and unknown kinds: opkg-lede on
    # OpenWrt has no use for the former and ignores the latter.


def _add_feed(conf: OpkgConf, feed: Feed) -> None:
    if feed.url and all(known.name != feed.name for known in conf.feeds):
        conf.feeds.append(feed)


def _priority(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return DEFAULT_ARCH_PRIORITY


def _tokens(line: str) -> list[str] | None:
    """Split a config line into tokens, honouring "double quotes"; None for a
    blank or comment line."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    tokens: list[str] = []
    while text:
        token, text = _next_token(text)
        tokens.append(token)
    return tokens


def _next_token(text: str) -> tuple[str, str]:
    if text.startswith('"'):
        end = text.find('"', 1)
        if end > 0:
            return text[1:end], text[end + 1:].lstrip()
    for index, char in enumerate(text):
        if char.isspace():
            return text[:index], text[index:].lstrip()
    return text, ""
