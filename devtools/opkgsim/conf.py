"""opkg.conf parsing and the paths opkg derives from it (libopkg/opkg_conf.c).

Paths are built by string concatenation exactly as opkg-lede does, so under
``-o ROOT`` they look like opkg's own messages: the lock is
``ROOT//var/lock/opkg.lock``, the lists dir ``ROOT//var/opkg-lists``, the root
dest ``ROOT/``. Besides the ``-f`` file, opkg reads ``ROOT/etc/opkg/*.conf``
under an offline root, else ``$OPKG_CONF_DIR/*.conf`` (default
``/etc/opkg/*.conf``); the ``-f`` file itself is skipped if the glob finds it.
"""
from __future__ import annotations

import dataclasses
import errno
import glob
import os
import platform
import re
import shlex

from .args import Options
from .messages import Messages

LOCK_FILE = "/var/lock/opkg.lock"
DEFAULT_LISTS_DIR = "/var/opkg-lists"
STATE_DIR = "/usr/lib/opkg"
BOOL_OPTIONS = {
    "force_defaults", "force_maintainer", "force_depends", "force_overwrite",
    "force_downgrade", "force_reinstall", "force_space", "force_postinstall",
    "force_checksum", "check_signature", "test", "noaction", "download_only",
    "nodeps", "nocase", "query-all", "size",
}
STRING_OPTIONS = {
    "cache", "ftp_proxy", "http_proxy", "https_proxy", "no_proxy", "offline_root",
    "overlay_root", "proxy_passwd", "proxy_user", "tmp_dir", "verbosity",
    "signature_ca_file", "signature_ca_path", "http_timeout", "verify_program",
}


class ConfError(Exception):
    """Configuration failed to load; the error is already collected."""


@dataclasses.dataclass
class Feed:
    """A ``src``/``src/gz`` line."""

    name: str
    url: str
    gzip: bool


@dataclasses.dataclass
class Dest:
    """A ``dest`` line resolved against the offline root."""

    name: str
    root_dir: str  # always ends in "/"
    offline_root: str

    @property
    def opkg_dir(self) -> str:
        return self.root_dir + STATE_DIR

    @property
    def info_dir(self) -> str:
        return self.opkg_dir + "/info"

    @property
    def status_file(self) -> str:
        return self.opkg_dir + "/status"

    @property
    def host_prefix(self) -> str:
        """root_dir as seen from inside the offline root ("/" or "/mnt/sd/")."""
        return self.root_dir[len(self.offline_root):]


@dataclasses.dataclass
class Config:
    """The loaded configuration of one run."""

    opts: Options
    offline_root: str = ""
    feeds: list[Feed] = dataclasses.field(default_factory=list)
    dests: list[Dest] = dataclasses.field(default_factory=list)
    arches: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    lists_dir: str = DEFAULT_LISTS_DIR
    options: dict[str, str | bool] = dataclasses.field(default_factory=dict)
    default_dest: Dest | None = None
    restrict_to_default_dest: bool = False
    raw_dests: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    @property
    def lock_file(self) -> str:
        return f"{self.offline_root}/{LOCK_FILE}" if self.offline_root else LOCK_FILE

    @property
    def overlay_root(self) -> str | None:
        value = self.options.get("overlay_root")
        return value if isinstance(value, str) else None

    def arch_priority(self, arch: str | None) -> int:
        """Priority of an architecture; 0 when not configured."""
        for name, prio in self.arches:
            if name == arch:
                return prio
        return 0

    def dest_named(self, name: str) -> Dest | None:
        return next((d for d in self.dests if d.name == name), None)

    def flag(self, name: str) -> bool:
        """A force/behaviour flag set on the command line or as ``option``."""
        return bool(getattr(self.opts, name, False) or self.options.get(name) is True)


def read_config_files(opts: Options, msgs: Messages) -> Config:
    """Parse the -f file and the conf.d glob (before the lock is taken)."""
    offline_root = opts.offline_root or os.environ.get("OFFLINE_ROOT") or ""
    conf = Config(opts=opts, offline_root=offline_root)
    if opts.conf_file:
        if not os.path.exists(opts.conf_file):
            msgs.perror("opkg_conf_load", f"Couldn't stat {opts.conf_file}", errno.ENOENT)
            raise ConfError
        _parse_file(opts.conf_file, conf, msgs)
    for path in sorted(glob.glob(_conf_glob(offline_root))):
        if path != opts.conf_file:
            _parse_file(path, conf, msgs)
    _apply_command_line(opts, conf)
    return conf


def resolve(conf: Config, msgs: Messages) -> None:
    """Finish loading after the lock: lists dir, arches, dests (opkg order)."""
    lists_dir = conf.opts.lists_dir or conf.lists_dir
    conf.lists_dir = f"{conf.offline_root}/{lists_dir}" if conf.offline_root else lists_dir
    if not conf.arches:
        conf.arches = [("all", 1), ("noarch", 1), (platform.machine() or "unknown", 10)]
    for name, path in conf.raw_dests or [("root", "/")]:
        root = conf.offline_root + path
        dest = Dest(name=name, root_dir=root if root.endswith("/") else root + "/",
                    offline_root=conf.offline_root)
        conf.dests.append(dest)
        _make_dest_dirs(dest, conf.lists_dir)
        if conf.default_dest is None:
            conf.default_dest = dest
        if conf.opts.dest and dest.name == conf.opts.dest:
            conf.default_dest = dest
            conf.restrict_to_default_dest = True
    if conf.opts.dest and not conf.restrict_to_default_dest:
        msgs.error("resolve_pkg_dest_list", f"Unknown dest name: `{conf.opts.dest}'.\n")
        raise ConfError


def _make_dest_dirs(dest: Dest, lists_dir: str) -> None:
    """pkg_dest_init() creates these directories on every run."""
    for path in (dest.root_dir, dest.opkg_dir, lists_dir, dest.info_dir):
        try:
            os.makedirs(path, mode=0o755, exist_ok=True)
        except OSError:
            pass  # opkg ignores failures here too; later steps report them


def _conf_glob(offline_root: str) -> str:
    if offline_root:
        return f"{offline_root}/etc/opkg/*.conf"
    return f"{os.environ.get('OPKG_CONF_DIR', '/etc/opkg')}/*.conf"


def _apply_command_line(opts: Options, conf: Config) -> None:
    # opkg-cl parses these before the conf files, so they come first (and
    # the first dest is the default one).
    conf.raw_dests[:0] = _pairs(opts.add_dest)
    conf.arches[:0] = [(name, _int(prio)) for name, prio in _pairs(opts.add_arch)]
    if opts.verbosity == 1 and isinstance(conf.options.get("verbosity"), str):
        opts.verbosity = _int(str(conf.options["verbosity"]))


def _pairs(values: list[str]) -> list[tuple[str, str]]:
    pairs = [value.partition(":") for value in values]
    return [(name, rest) for name, _, rest in pairs if name and rest]


_COMMENT = re.compile(r"^\s*(#.*|\s*)$")


def _parse_file(path: str, conf: Config, msgs: Messages) -> None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        msgs.perror("opkg_conf_parse_file", f"Failed to open {path}", exc.errno or errno.EIO)
        raise ConfError from exc
    msgs.info("opkg_conf_parse_file", f"Loading conf file {path}.\n")
    for number, line in enumerate(lines, start=1):
        if not _COMMENT.match(line):
            _parse_line(path, number, line, conf, msgs)


def _parse_line(path: str, number: int, line: str, conf: Config, msgs: Messages) -> None:
    try:
        words = shlex.split(line, comments=False, posix=True)
    except ValueError:
        words = line.split()
    kind, name, value = (words + ["", "", ""])[:3]
    if len(words) > 3 and not kind.startswith("dist"):
        msgs.error("opkg_conf_parse_file",
                   f"{path}:{number}: Ignoring config line with trailing garbage: `{line}'\n")
        return
    if kind == "option":
        _set_option(conf, name, value or None, msgs)
    elif kind in ("src", "src/gz"):
        if any(feed.name == name for feed in conf.feeds):
            msgs.error("opkg_conf_parse_file", f"Duplicate src declaration ({name} {value}). Skipping.\n")
        else:
            conf.feeds.append(Feed(name=name, url=value, gzip=kind == "src/gz"))
    elif kind == "dest":
        conf.raw_dests.append((name, value))
    elif kind == "lists_dir":
        conf.lists_dir = value
    elif kind == "arch":
        conf.arches.append((name, _int(value or "10")))
    elif kind in ("dist", "dist/gz"):
        pass  # distribution feeds are not simulated
    else:
        msgs.error("opkg_conf_parse_file", f"{path}:{number}: Ignoring invalid line: `{line}'\n")


def _set_option(conf: Config, name: str, value: str | None, msgs: Messages) -> None:
    if name in BOOL_OPTIONS:
        conf.options[name] = True
    elif name in STRING_OPTIONS:
        if value is None:
            msgs.error("opkg_conf_set_option", f"Option {name} needs an argument\n")
        elif name not in conf.options:
            conf.options[name] = value
    else:
        msgs.error("opkg_conf_set_option", f"Unrecognized option: {name}={value}\n")


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        return 0
