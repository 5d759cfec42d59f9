"""Command-line parsing as opkg-cl does it (getopt_long_only).

Options may come before or after the sub-command (GNU getopt permutes),
long options may be written with one dash (``-force-depends``) and may be
abbreviated to a unique prefix. The usage text is opkg-cl.c's, printed on
stdout, and bad usage exits with status 1.
"""
from __future__ import annotations

import dataclasses
import sys

VERSION = "stand-in (pineapple-jobd devtools)"

# name -> (takes_argument, destination). Destinations starting with "force_"
# etc. are boolean flags on Options.
LONG_OPTIONS: dict[str, tuple[bool, str]] = {
    "query-all": (False, "query_all"),
    "autoremove": (False, "autoremove"),
    "cache": (True, "cache"),
    "conf-file": (True, "conf_file"),
    "conf": (True, "conf_file"),
    "dest": (True, "dest"),
    "force-maintainer": (False, "force_maintainer"),
    "force_maintainer": (False, "force_maintainer"),
    "force-depends": (False, "force_depends"),
    "force_depends": (False, "force_depends"),
    "force-overwrite": (False, "force_overwrite"),
    "force_overwrite": (False, "force_overwrite"),
    "force_downgrade": (False, "force_downgrade"),
    "force-downgrade": (False, "force_downgrade"),
    "force-reinstall": (False, "force_reinstall"),
    "force_reinstall": (False, "force_reinstall"),
    "force-space": (False, "force_space"),
    "force_space": (False, "force_space"),
    "recursive": (False, "force_removal_of_dependent_packages"),
    "force-removal-of-dependent-packages": (False, "force_removal_of_dependent_packages"),
    "force_removal_of_dependent_packages": (False, "force_removal_of_dependent_packages"),
    "force-removal-of-essential-packages": (False, "force_removal_of_essential_packages"),
    "force_removal_of_essential_packages": (False, "force_removal_of_essential_packages"),
    "force-postinstall": (False, "force_postinstall"),
    "force_postinstall": (False, "force_postinstall"),
    "force-remove": (False, "force_remove"),
    "force_remove": (False, "force_remove"),
    "force-checksum": (False, "force_checksum"),
    "force_checksum": (False, "force_checksum"),
    "force-signature": (False, "force_signature"),
    "force_signature": (False, "force_signature"),
    "noaction": (False, "noaction"),
    "download-only": (False, "download_only"),
    "nodeps": (False, "nodeps"),
    "nocase": (False, "nocase"),
    "offline": (True, "offline_root"),
    "offline-root": (True, "offline_root"),
    "add-arch": (True, "add_arch"),
    "add-dest": (True, "add_dest"),
    "size": (False, "size"),
    "test": (False, "noaction"),
    "tmp-dir": (True, "tmp_dir"),
    "tmp_dir": (True, "tmp_dir"),
    "lists-dir": (True, "lists_dir"),
    "lists_dir": (True, "lists_dir"),
    "verbosity": (False, "verbosity"),  # optional argument, handled specially
    "version": (False, "version"),
}
# getopt short-option string "Ad:f:ino:p:l:t:vV::"
SHORT_OPTIONS: dict[str, tuple[bool, str]] = {
    "A": (False, "query_all"),
    "d": (True, "dest"),
    "f": (True, "conf_file"),
    "i": (False, "nocase"),
    "n": (False, "noaction_n"),  # accepted by getopt, ignored by opkg-cl
    "o": (True, "offline_root"),
    "p": (True, "unused_p"),
    "l": (True, "lists_dir"),
    "t": (True, "tmp_dir"),
    "v": (False, "version"),
}


@dataclasses.dataclass
class Options:
    """Everything opkg-cl's args_parse() can set."""

    query_all: bool = False
    autoremove: bool = False
    cache: str | None = None
    conf_file: str | None = None
    dest: str | None = None
    force_maintainer: bool = False
    force_depends: bool = False
    force_overwrite: bool = False
    force_downgrade: bool = False
    force_reinstall: bool = False
    force_space: bool = False
    force_removal_of_dependent_packages: bool = False
    force_removal_of_essential_packages: bool = False
    force_postinstall: bool = False
    force_remove: bool = False
    force_checksum: bool = False
    force_signature: bool = False
    noaction: bool = False
    download_only: bool = False
    nodeps: bool = False
    nocase: bool = False
    offline_root: str | None = None
    add_arch: list[str] = dataclasses.field(default_factory=list)
    add_dest: list[str] = dataclasses.field(default_factory=list)
    size: bool = False
    tmp_dir: str | None = None
    lists_dir: str | None = None
    verbosity: int = 1
    version: bool = False
    noaction_n: bool = False
    unused_p: str | None = None


class UsageError(Exception):
    """Bad command line: opkg prints the usage text and exits 1."""


def parse_args(argv: list[str]) -> tuple[Options, list[str]]:
    """Split ``argv`` (without argv[0]) into options and positional words.

    Raises UsageError for an unknown option or a missing option argument
    (getopt's own complaint has already been printed on stderr then).
    """
    opts = Options()
    words: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            words.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            words.append(arg)
            continue
        i = _parse_option(opts, arg, argv, i)
    if opts.conf_file is None and opts.offline_root is None:
        opts.conf_file = "/etc/opkg.conf"
    return opts, words


def _parse_option(opts: Options, arg: str, argv: list[str], i: int) -> int:
    """Apply one option word; returns the index of the next unread word."""
    body = arg[2:] if arg.startswith("--") else arg[1:]
    name, has_value, value = body.partition("=")
    long_name = _match_long(name, arg.startswith("--") or len(name) > 1)
    if long_name is not None:
        takes_arg, dest = LONG_OPTIONS[long_name]
        if long_name == "verbosity":
            _set(opts, "verbosity", int(value) if has_value and value.isdigit() else 2)
            return i
        if takes_arg and not has_value:
            if i >= len(argv):
                _complain(f"option '{arg}' requires an argument")
            value, i = argv[i], i + 1
        _set(opts, dest, value if takes_arg else True)
        return i
    if arg.startswith("--"):
        _complain(f"unrecognized option '{arg}'")
    return _parse_short_cluster(opts, arg[1:], argv, i)


def _parse_short_cluster(opts: Options, cluster: str, argv: list[str], i: int) -> int:
    pos = 0
    while pos < len(cluster):
        letter = cluster[pos]
        pos += 1
        if letter == "V":
            # "V::" - optional argument glued to the option only.
            rest = cluster[pos:]
            _set(opts, "verbosity", int(rest) if rest.isdigit() else 2)
            return i
        if letter not in SHORT_OPTIONS:
            _complain(f"invalid option -- '{letter}'")
        takes_arg, dest = SHORT_OPTIONS[letter]
        if not takes_arg:
            _set(opts, dest, True)
            continue
        value = cluster[pos:]
        if not value:
            if i >= len(argv):
                _complain(f"option requires an argument -- '{letter}'")
            value, i = argv[i], i + 1
        _set(opts, dest, value)
        return i
    return i


def _match_long(name: str, allow: bool) -> str | None:
    """Exact or unique-prefix match of a long option name."""
    if not allow or not name:
        return None
    if name in LONG_OPTIONS:
        return name
    matches = {LONG_OPTIONS[n][1] for n in LONG_OPTIONS if n.startswith(name)}
    if len(matches) == 1:
        return next(n for n in LONG_OPTIONS if n.startswith(name))
    return None


def _set(opts: Options, dest: str, value: object) -> None:
    if dest in ("add_arch", "add_dest"):
        getattr(opts, dest).append(value)
    else:
        setattr(opts, dest, value)


def _complain(text: str) -> None:
    sys.stderr.write(f"opkg: {text}\n")
    raise UsageError(text)


USAGE = """usage: opkg [options...] sub-command [arguments...]
where sub-command is one of:

Package Manipulation:
\tupdate\t\t\tUpdate list of available packages
\tupgrade <pkgs>\t\tUpgrade packages
\tinstall <pkgs>\t\tInstall package(s)
\tconfigure <pkgs>\tConfigure unpacked package(s)
\tremove <pkgs|regexp>\tRemove package(s)
\tflag <flag> <pkgs>\tFlag package(s)
\t <flag>=hold|noprune|user|ok|installed|unpacked (one per invocation)

Informational Commands:
\tlist\t\t\tList available packages
\tlist-installed\t\tList installed packages
\tlist-upgradable\t\tList installed and upgradable packages
\tlist-changed-conffiles\tList user modified configuration files
\tfiles <pkg>\t\tList files belonging to <pkg>
\tsearch <file|regexp>\tList package providing <file>
\tfind <regexp>\t\tList packages whose name or description matches <regexp>
\tinfo [pkg|regexp]\tDisplay all info for <pkg>
\tstatus [pkg|regexp]\tDisplay all status for <pkg>
\tdownload <pkg>\t\tDownload <pkg> to current directory
\tcompare-versions <v1> <op> <v2>
\t                    compare versions using <= < > >= = << >>
\tprint-architecture\tList installable package architectures
\tdepends [-A] [pkgname|pat]+
\twhatdepends [-A] [pkgname|pat]+
\twhatdependsrec [-A] [pkgname|pat]+
\twhatrecommends[-A] [pkgname|pat]+
\twhatsuggests[-A] [pkgname|pat]+
\twhatprovides [-A] [pkgname|pat]+
\twhatconflicts [-A] [pkgname|pat]+
\twhatreplaces [-A] [pkgname|pat]+

Options:
\t-A\t\t\tQuery all packages not just those installed
\t-V[<level>]\t\tSet verbosity level to <level>.
\t--verbosity[=<level>]\tVerbosity levels:
\t\t\t\t\t0 errors only
\t\t\t\t\t1 normal messages (default)
\t\t\t\t\t2 informative messages
\t\t\t\t\t3 debug
\t\t\t\t\t4 debug level 2
\t-f <conf_file>\t\tUse <conf_file> as the opkg configuration file
\t--conf <conf_file>
\t--cache <directory>\tUse a package cache
\t-d <dest_name>\t\tUse <dest_name> as the the root directory for
\t--dest <dest_name>\tpackage installation, removal, upgrading.
\t\t\t\t<dest_name> should be a defined dest name from
\t\t\t\tthe configuration file, (but can also be a
\t\t\t\tdirectory name in a pinch).
\t-o <dir>\t\tUse <dir> as the root directory for
\t--offline-root <dir>\toffline installation of packages.
\t--add-arch <arch>:<prio>\tRegister architecture with given priority
\t--add-dest <name>:<path>\tRegister destination with given path

Force Options:
\t--force-depends\t\tInstall/remove despite failed dependencies
\t--force-maintainer\tOverwrite preexisting config files
\t--force-reinstall\tReinstall package(s)
\t--force-overwrite\tOverwrite files from other package(s)
\t--force-downgrade\tAllow opkg to downgrade packages
\t--force-space\t\tDisable free space checks
\t--force-postinstall\tRun postinstall scripts even in offline mode
\t--force-remove\tRemove package even if prerm script fails
\t--force-checksum\tDon't fail on checksum mismatches
\t--noaction\t\tNo action -- test only
\t--download-only\tNo action -- download only
\t--nodeps\t\tDo not follow dependencies
\t--nocase\t\tPerform case insensitive pattern matching
\t--size\t\t\tPrint package size when listing available packages
\t--force-removal-of-dependent-packages
\t\t\t\tRemove package and all dependencies
\t--autoremove\t\tRemove packages that were installed
\t\t\t\tautomatically to satisfy dependencies
\t-t\t\t\tSpecify tmp-dir.
\t--tmp-dir\t\tSpecify tmp-dir.
\t-l\t\t\tSpecify lists-dir.
\t--lists-dir\t\tSpecify lists-dir.

 regexp could be something like 'pkgname*' '*file*' or similar
 e.g. opkg info 'libstd*' or opkg search '*libop*' or opkg remove 'libncur*'
"""


def print_usage() -> None:
    """opkg-cl's usage(): the text on stdout (the caller exits 1)."""
    sys.stdout.write(USAGE)
