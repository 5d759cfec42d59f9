"""Read-only commands: list-installed, list, status, info, files,
print-architecture, compare-versions (libopkg/opkg_cmd.c)."""
from __future__ import annotations

import fnmatch
import sys

from .control import compare_versions
from .pkgdb import Pkg, info_stanza
from .runtime import Run


def _matches(run: Run, pattern: str | None, name: str) -> bool:
    if pattern is None:
        return True
    if run.flag("nocase"):
        return fnmatch.fnmatch(name.lower(), pattern.lower())
    return fnmatch.fnmatchcase(name, pattern)


def _print_pkg(run: Run, pkg: Pkg) -> None:
    """print_pkg(): ``name - version[ - size][ - description]``."""
    line = f"{pkg.name} - {pkg.version}"
    if run.flag("size"):
        line += f" - {pkg.size}"
    if pkg.fields.get("Description"):
        line += f" - {pkg.fields['Description']}"
    sys.stdout.write(line + "\n")


def list_installed_cmd(run: Run, args: list[str]) -> int:
    pattern = args[0] if args else None
    for pkg in sorted(run.db.installed(), key=lambda p: p.name):
        if _matches(run, pattern, pkg.name):
            _print_pkg(run, pkg)
    return 0


def list_cmd(run: Run, args: list[str]) -> int:
    pattern = args[0] if args else None
    for pkg in sorted(run.db.pkgs, key=lambda p: p.name):
        if _matches(run, pattern, pkg.name):
            _print_pkg(run, pkg)
    return 0


def _info_status(run: Run, args: list[str], pkgs: list[Pkg]) -> int:
    pattern = args[0] if args else None
    for pkg in pkgs:
        if not _matches(run, pattern, pkg.name):
            continue
        sys.stdout.write(info_stanza(pkg))
        for name, value in pkg.conffiles:
            if value:
                from .pkgdb import conffile_modified

                modified = int(conffile_modified(run.db, str(name), value))
                run.msgs.info("opkg_info_status_cmd", f"conffile={name} md5sum={value} modified={modified}.\n")
    return 0


def status_cmd(run: Run, args: list[str]) -> int:
    """Installed packages only; an unknown name prints nothing, rc 0."""
    return _info_status(run, args, run.db.installed())


def info_cmd(run: Run, args: list[str]) -> int:
    """Every known package (feeds and status)."""
    return _info_status(run, args, list(run.db.pkgs))


def files_cmd(run: Run, args: list[str]) -> int:
    pkg = run.db.installed_by_name(args[0])
    if pkg is None:
        run.msgs.error("opkg_files_cmd", f"Package {args[0]} not installed.\n")
        return 0
    sys.stdout.write(f"Package {pkg.name} ({pkg.version}) is installed on "
                     f"{pkg.dest.name if pkg.dest else 'root'} and has the following files:\n")
    for path in run.db.installed_files(pkg):
        sys.stdout.write(path + "\n")
    return 0


def print_architecture_cmd(run: Run, args: list[str]) -> int:
    for name, prio in run.conf.arches:
        sys.stdout.write(f"arch {name} {prio}\n")
    return 0


def compare_versions_cmd(run: Run, args: list[str]) -> int:
    """Exit status 1 when ``v1 op v2`` holds, else 0 (opkg's own convention)."""
    if len(args) != 3:
        run.msgs.error("opkg_compare_versions_cmd",
                       "opkg compare_versions <v1> <op> <v2>\n<op> is one of <= >= << >> =\n")
        return -1
    cmp = compare_versions(args[0], args[2])
    op = args[1]
    holds = {"<=": cmp <= 0, "<": cmp <= 0, ">=": cmp >= 0, ">": cmp >= 0,
             "<<": cmp < 0, ">>": cmp > 0, "=": cmp == 0}.get(op)
    if holds is None:
        run.msgs.error("pkg_version_satisfied", f"Unknown operator: {op}.\n")
        return 0
    return int(holds)
