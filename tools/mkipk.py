"""Build the pineapple-jobd OpenWrt package without an SDK (standard library only).

    python tools/mkipk.py ipk  [--out dist] [--python-version 3.11]
    python tools/mkipk.py feed [--out dist/feed] [--python-version 3.11]
    python tools/mkipk.py stage DESTDIR [--python-version 3.11]

``ipk`` writes ``pineapple-jobd_<version>-<release>_all.ipk`` in the layout
opkg-lede reads (see devtools/ipk.py). ``feed`` writes it into a feed
directory with ``Packages``/``Packages.gz``. ``stage`` writes only the Python
package and the /usr/bin entry points into DESTDIR: the OpenWrt SDK build
(openwrt/pineapple-jobd/Makefile) calls it, so both ways of building ship the
same files.

One source of truth for each fact, so the two builds cannot drift:

- version: ``pineapple/__init__.py``; release, license, maintainer, section,
  title, URL, dependencies, description, conffiles:
  ``openwrt/pineapple-jobd/Makefile``;
- the Python files: ``setup.py``'s packages/package_data rules (what a wheel
  would hold), entry points: its ``console_scripts``;
- init script and UCI config: ``openwrt/pineapple-jobd/files/``.

Reproducible: every member gets the same mtime (``SOURCE_DATE_EPOCH``, else
the last git commit's time, else 0), owner root, sorted names, gzip mtime 0.
"""
from __future__ import annotations

import argparse
import ast
import fnmatch
import gzip
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Tuple, Union

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "pineapple-jobd"
FEED_MAKEFILE = Path("openwrt") / PACKAGE / "Makefile"
FILES_DIR = Path("openwrt") / PACKAGE / "files"
DEFAULT_PYTHON_VERSION = "3.11"  # OpenWrt 23.05 and 24.10 ship Python 3.11
INIT_PATH = f"/etc/init.d/{PACKAGE}"
CONFIG_PATH = f"/etc/config/{PACKAGE}"
SCRIPT_MODE = 0o755
FILE_MODE = 0o644
CONF_MODE = 0o600  # $(INSTALL_CONF) in OpenWrt's rules.mk: the file may hold the MQTT password

# The maintainer scripts OpenWrt's include/package-pack.mk generates for every
# package without its own: default_postinst/default_prerm (base-files'
# /lib/functions.sh) enable+start / stop+disable every /etc/init.d script of
# the package on a live system, only enable it when building an image
# (IPKG_INSTROOT set), and keep the user's enable/disable choice on upgrades.
# Shipping the same text keeps `make ipk` and an SDK build interchangeable.
POSTINST = """#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
"""
PRERM = """#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
"""

FileContent = Union[bytes, Tuple[bytes, int]]


# -- the feed Makefile ---------------------------------------------------------


@dataclass(frozen=True)
class FeedPackage:
    """What openwrt/pineapple-jobd/Makefile says about the package."""

    name: str
    version: str
    release: str
    license: str
    license_files: str
    maintainer: str
    section: str
    title: str
    url: str
    depends: tuple[str, ...]        # DEPENDS without '+', in file order
    extra_depends: str              # EXTRA_DEPENDS (versioned, control-file only)
    description: str
    conffiles: tuple[str, ...]

    @property
    def full_version(self) -> str:
        """``PKG_VERSION-PKG_RELEASE``, opkg's Version field."""
        return f"{self.version}-{self.release}"

    def control_depends(self) -> str:
        """The Depends field as OpenWrt's package-pack.mk writes it: the
        EXTRA_DEPENDS (versioned) entries first, then libc (PKG_FIXUP_DEPENDS
        adds it to every non-kmod package), then DEPENDS.

        A package named in EXTRA_DEPENDS is not listed a second time without
        its version (package-pack.mk's apk branch filters it out too; its
        ipk branch does not, and opkg-lede's ``remove --autoremove`` then
        stops with an error at the duplicate, leaving orphans behind).
        """
        extra = [entry.strip() for entry in self.extra_depends.split(",") if entry.strip()]
        versioned = {entry.split()[0] for entry in extra}
        plain = ["libc", *(d for d in self.depends if d != "libc" and d not in versioned)]
        return ", ".join([*extra, *plain])


def parse_makefile(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """``(variables, defines)`` of an OpenWrt package Makefile.

    Only what a package Makefile uses is understood: ``NAME:=value`` lines
    (with ``\\`` continuations) and ``define NAME`` ... ``endef`` blocks,
    whose raw bodies are returned. Nothing is expanded.
    """
    variables: dict[str, str] = {}
    defines: dict[str, str] = {}
    lines = _join_continuations(text)
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("define "):
            name = line[len("define "):].strip()
            body, index = _define_body(lines, index + 1)
            defines[name] = body
            continue
        match = re.match(r"^([A-Za-z0-9_]+)\s*:?=\s*(.*)$", line)
        if match:
            variables[match.group(1)] = match.group(2).strip()
        index += 1
    return variables, defines


def _join_continuations(text: str) -> list[str]:
    joined: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        joined.append(pending + raw)
        pending = ""
    if pending:
        joined.append(pending)
    return joined


def _define_body(lines: list[str], start: int) -> tuple[str, int]:
    for end in range(start, len(lines)):
        if lines[end].strip() == "endef":
            return "\n".join(lines[start:end]), end + 1
    raise ValueError("define without endef")


def define_assignments(body: str) -> dict[str, str]:
    """``NAME:=value`` lines inside a define body (indentation allowed)."""
    found: dict[str, str] = {}
    for line in body.splitlines():
        match = re.match(r"^\s*([A-Z_]+)\s*[:+]?=\s*(.*)$", line)
        if match:
            found[match.group(1)] = " ".join(match.group(2).split())
    return found


def load_feed_package(repo: Path = REPO) -> FeedPackage:
    """Read the package definition from openwrt/pineapple-jobd/Makefile."""
    variables, defines = parse_makefile((repo / FEED_MAKEFILE).read_text(encoding="utf-8"))
    fields = define_assignments(defines[f"Package/{PACKAGE}"])
    depends = tuple(_plain_dependency(word) for word in fields.get("DEPENDS", "").split())
    return FeedPackage(
        name=_literal(variables, "PKG_NAME"),
        version=_literal(variables, "PKG_VERSION"),
        release=_literal(variables, "PKG_RELEASE"),
        license=_literal(variables, "PKG_LICENSE"),
        license_files=variables.get("PKG_LICENSE_FILES", ""),
        maintainer=_literal(variables, "PKG_MAINTAINER"),
        section=_literal(fields, "SECTION"),
        title=_literal(fields, "TITLE"),
        url=fields.get("URL", ""),  # optional, as in OpenWrt
        depends=depends,
        extra_depends=fields.get("EXTRA_DEPENDS", ""),
        description=_dedent_block(defines.get(f"Package/{PACKAGE}/description", "")),
        conffiles=tuple(line.strip() for line in defines.get(f"Package/{PACKAGE}/conffiles", "").splitlines()
                        if line.strip()),
    )


def _literal(values: Mapping[str, str], name: str) -> str:
    value = values.get(name, "")
    if not value or "$(" in value:
        # mkipk does not expand make variables: keep these fields literal.
        raise ValueError(f"{FEED_MAKEFILE}: {name} must be a literal value, got {value!r}")
    return value


def _plain_dependency(word: str) -> str:
    if not word.startswith("+") or ":" in word or word.startswith("@"):
        # Conditional (+FOO:pkg) or menu-only (@FOO) dependencies depend on the
        # build configuration; there is none without an SDK.
        raise ValueError(f"{FEED_MAKEFILE}: unsupported dependency {word!r} (use +package)")
    return word[1:]


def _dedent_block(body: str) -> str:
    lines = [line.strip() for line in body.strip("\n").splitlines()]
    return "\n".join(line if line else "." for line in lines).strip()


# -- the Python files ----------------------------------------------------------


@dataclass(frozen=True)
class SetupInfo:
    """The parts of setup.py that decide what a wheel holds."""

    console_scripts: dict[str, str]          # name -> "module:function"
    package_data: dict[str, list[str]]       # package -> glob patterns


def read_setup(repo: Path = REPO) -> SetupInfo:
    """Read console_scripts and package_data from setup.py's ``setup()`` call
    without running it (its keyword values are literals)."""
    tree = ast.parse((repo / "setup.py").read_text(encoding="utf-8"))
    call = next(node for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup")
    keywords = {kw.arg: kw.value for kw in call.keywords if kw.arg}
    entry_points = ast.literal_eval(keywords["entry_points"]) if "entry_points" in keywords else {}
    scripts = {}
    for spec in entry_points.get("console_scripts", []):
        name, _, target = spec.partition("=")
        scripts[name.strip()] = target.strip()
    package_data = ast.literal_eval(keywords["package_data"]) if "package_data" in keywords else {}
    return SetupInfo(console_scripts=scripts, package_data=package_data)


def find_packages(root: Path, top: str = "pineapple") -> list[str]:
    """Dotted names of ``top`` and its sub-packages, as setuptools'
    find_packages finds them: a directory counts only with an __init__.py,
    and the search does not descend into non-package directories."""
    if not (root / top / "__init__.py").is_file():
        raise FileNotFoundError(f"{root / top} is not a Python package")
    found = [top]
    pending = [root / top]
    while pending:
        directory = pending.pop()
        for child in sorted(directory.iterdir()):
            if child.is_dir() and "." not in child.name and (child / "__init__.py").is_file():
                found.append(".".join(child.relative_to(root).parts))
                pending.append(child)
    return sorted(found)


def python_files(repo: Path = REPO) -> dict[str, bytes]:
    """Relative path (``pineapple/...``) -> content of every file a wheel of
    this project would hold: each package's *.py plus its package_data. No
    __pycache__, tests, devtools or bench (they are not packages of it)."""
    setup = read_setup(repo)
    files: dict[str, bytes] = {}
    for package in find_packages(repo):
        directory = repo.joinpath(*package.split("."))
        for path in sorted(directory.iterdir()):
            if path.is_file() and path.suffix == ".py":
                files[path.relative_to(repo).as_posix()] = path.read_bytes()
        for pattern in setup.package_data.get(package, []):
            for path in sorted(directory.glob(pattern)):
                if path.is_file() and not fnmatch.fnmatch(path.name, "*.py[co]"):
                    files[path.relative_to(repo).as_posix()] = path.read_bytes()
    return files


def entry_script(name: str, target: str) -> bytes:
    """A console-script launcher like the one pip/installer writes; the
    shebang is the one OpenWrt's Python3/FixShebang sets."""
    module, _, function = target.partition(":")
    return (
        "#!/usr/bin/python3\n"
        f'"""{name}: console entry point ({target})."""\n'
        "import sys\n\n"
        f"from {module} import {function}\n\n"
        'if __name__ == "__main__":\n'
        f"    sys.exit({function}())\n"
    ).encode()


def site_packages(python_version: str) -> str:
    """The target's site-packages, as python3-package.mk's PYTHON3_PKG_DIR."""
    if not re.fullmatch(r"\d+\.\d+", python_version):
        raise ValueError(f"python version must look like 3.11, got {python_version!r}")
    return f"/usr/lib/python{python_version}/site-packages"


def staged_files(repo: Path = REPO, python_version: str = DEFAULT_PYTHON_VERSION) -> dict[str, FileContent]:
    """Target path -> content for the Python package and its entry points."""
    prefix = site_packages(python_version)
    files: dict[str, FileContent] = {f"{prefix}/{rel}": (data, FILE_MODE)
                                     for rel, data in python_files(repo).items()}
    for name, target in read_setup(repo).console_scripts.items():
        files[f"/usr/bin/{name}"] = (entry_script(name, target), SCRIPT_MODE)
    return files


def package_files(repo: Path = REPO, python_version: str = DEFAULT_PYTHON_VERSION) -> dict[str, FileContent]:
    """Everything the .ipk installs: staged files, init script, UCI config."""
    files = staged_files(repo, python_version)
    files[INIT_PATH] = ((repo / FILES_DIR / f"{PACKAGE}.init").read_bytes(), SCRIPT_MODE)
    files[CONFIG_PATH] = ((repo / FILES_DIR / f"{PACKAGE}.config").read_bytes(), CONF_MODE)
    return files


def stage(dest: Path, repo: Path = REPO, python_version: str = DEFAULT_PYTHON_VERSION) -> list[Path]:
    """Write :func:`staged_files` under ``dest`` (the SDK's PKG_INSTALL_DIR)."""
    written = []
    for target, (data, mode) in sorted(staged_files(repo, python_version).items()):
        path = dest / target.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
        written.append(path)
    return written


# -- the .ipk and the feed -----------------------------------------------------


def source_date_epoch(repo: Path = REPO) -> int:
    """SOURCE_DATE_EPOCH, else the last commit's time, else 0: the same commit
    always gives the same timestamps (and so the same bytes)."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if value.isdigit():
        return int(value)
    try:
        out = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%ct"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return 0
    return int(out) if out.isdigit() else 0


def control_fields(pkg: FeedPackage, installed_size: int | None = None) -> dict[str, str]:
    """The control stanza (field set of OpenWrt's Package/<name>/CONTROL)."""
    fields = {
        "Package": pkg.name,
        "Version": pkg.full_version,
        "Depends": pkg.control_depends(),
        "Source": f"feeds/pineapple/{pkg.name}",
        "SourceName": pkg.name,
        "License": pkg.license,
        "LicenseFiles": pkg.license_files,
        "Section": pkg.section,
        "URL": pkg.url,
        "Maintainer": pkg.maintainer,
        "Architecture": "all",
        # package.mk falls back to TITLE when there is no description.
        "Description": pkg.description or pkg.title,
    }
    for name in ("LicenseFiles", "URL"):
        if not fields[name]:
            del fields[name]  # package-pack.mk's addfield drops empty fields too
    if installed_size is not None:
        fields["Installed-Size"] = str(installed_size)
    return fields


def build(out_dir: Path, repo: Path = REPO, python_version: str = DEFAULT_PYTHON_VERSION,
          mtime: int | None = None) -> Path:
    """Build the .ipk into ``out_dir`` and return its path."""
    ipk = _ipk_module(repo)
    pkg = load_feed_package(repo)
    _check_version(pkg, repo)
    files = package_files(repo, python_version)
    stamp = source_date_epoch(repo) if mtime is None else mtime
    scripts = {"postinst": POSTINST, "prerm": PRERM}

    def _build(size: int | None) -> Path:
        return ipk.build_ipk(out_dir, control_fields(pkg, size), files, conffiles=pkg.conffiles,
                             scripts=scripts, mtime=stamp)

    # Installed-Size as OpenWrt's ipkg-build computes it: the length of the
    # uncompressed data tar. Only known once the tar exists, so build twice.
    first = _build(None)
    size = len(gzip.decompress(ipk.read_ipk(first)[1]["./data.tar.gz"]))
    return _build(size)


def build_feed(feed_dir: Path, repo: Path = REPO, python_version: str = DEFAULT_PYTHON_VERSION,
               mtime: int | None = None) -> Path:
    """Build the .ipk into ``feed_dir`` (dropping older builds of it) and
    index the feed; returns the path of Packages.gz."""
    ipk = _ipk_module(repo)
    feed_dir.mkdir(parents=True, exist_ok=True)
    for old in feed_dir.glob(f"{PACKAGE}_*.ipk"):
        old.unlink()
    build(feed_dir, repo, python_version, mtime)
    return ipk.index_feed(feed_dir)


def _check_version(pkg: FeedPackage, repo: Path) -> None:
    text = (repo / "pineapple" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'__version__ = "([^"]+)"', text)
    if not match or match.group(1) != pkg.version:
        found = match.group(1) if match else "nothing"
        raise ValueError(f"{FEED_MAKEFILE}: PKG_VERSION {pkg.version} != pineapple.__version__ {found}")


def _ipk_module(repo: Path) -> ModuleType:
    # devtools is not installed; it sits beside tools/ in the checkout.
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from devtools import ipk

    return ipk


# -- command line --------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mkipk", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, default_out, text in (("ipk", "dist", "build the .ipk"),
                                    ("feed", "dist/feed", "build the .ipk into a feed and index it")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--out", type=Path, default=REPO / default_out, help=f"output directory ({default_out})")
        _common(cmd)
        cmd.add_argument("--mtime", type=int, help="timestamp of every member (default: SOURCE_DATE_EPOCH, "
                                                   "else the last commit's time)")
    cmd = sub.add_parser("stage", help="write the Python package and entry points under DESTDIR (SDK build)")
    cmd.add_argument("dest", type=Path)
    cmd.add_argument("--source", type=Path, default=REPO, help="project checkout (default: this one)")
    _common(cmd)
    return parser


def _common(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--python-version", default=DEFAULT_PYTHON_VERSION,
                     help=f"target Python X.Y, for the site-packages path (default {DEFAULT_PYTHON_VERSION})")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "ipk":
            print(build(args.out, python_version=args.python_version, mtime=args.mtime))
        elif args.command == "feed":
            print(build_feed(args.out, python_version=args.python_version, mtime=args.mtime))
        else:
            stage(args.dest, args.source.resolve(), args.python_version)
            print(args.dest)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"mkipk: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
