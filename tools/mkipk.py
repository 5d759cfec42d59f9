"""Build this feed's packages without an SDK (standard library only).

    python tools/mkipk.py ipk  [--out dist] [--python-version 3.11] [--dl DIR] [--free-kb N] [--index FILE]
    python tools/mkipk.py feed [--out dist/feed] [same options]

``ipk`` writes ``pineapple-jobd_<version>-<release>_all.ipk`` and
``python3-sh_<version>-<release>_all.ipk`` in the layout opkg-lede reads
(see devtools/ipk.py), then reports the footprint (tools/footprint.py):
the installed size of each, of the release feed's python3 packages they pull
in, and the total against the device's free flash. ``feed`` writes them into
a feed directory with ``Packages``/``Packages.gz``; with the release feed
(python3-light, python3-logging, python3-urllib, python3-paho-mqtt) that is
all a device needs.

One source of truth for each fact, so the builds cannot drift:

- version: ``pineapple/__init__.py``; release, license, maintainer, section,
  title, URL, dependencies, description, conffiles: the feed Makefiles
  (``openwrt/pineapple-jobd/Makefile``, ``openwrt/python-sh/Makefile``);
- the Python files: ``setup.py``'s packages/package_data rules (what its
  wheel holds, as OpenWrt's standard Py3Build installs it), entry points:
  its ``console_scripts``; python3-sh: ``sh.py`` of the PyPI sdist whose
  sha256 is python-sh's ``PKG_HASH`` (downloaded with pip into ``--dl``,
  like the SDK's ``dl/``);
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
if str(REPO) not in sys.path:  # run as `python tools/mkipk.py`: tools.* and devtools.* import from the checkout
    sys.path.insert(0, str(REPO))
PACKAGE = "pineapple-jobd"
FEED_MAKEFILE = Path("openwrt") / PACKAGE / "Makefile"
SH_DIRECTORY, SH_PACKAGE = "python-sh", "python3-sh"
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
    """What a feed Makefile says about one binary package."""

    name: str                       # the binary package (python3-sh)
    source: str                     # the source package, PKG_NAME (python-sh)
    version: str
    release: str
    license: str
    license_files: str
    maintainer: str
    section: str
    title: str
    url: str
    depends: tuple[str, ...]        # DEPENDS without '+', in file order
    description: str
    conffiles: tuple[str, ...]
    pkg_hash: str                   # PKG_HASH: sha256 of PKG_SOURCE
    pypi_name: str                  # PYPI_NAME, empty for non-PyPI sources

    @property
    def full_version(self) -> str:
        """``PKG_VERSION-PKG_RELEASE``, opkg's Version field."""
        return f"{self.version}-{self.release}"

    def control_depends(self) -> str:
        """The Depends field as OpenWrt's package-pack.mk writes it: libc
        (PKG_FIXUP_DEPENDS adds it to every non-kmod package), then DEPENDS."""
        return ", ".join(["libc", *(d for d in self.depends if d != "libc")])


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


def load_feed_package(repo: Path = REPO, directory: str = PACKAGE, package: str = PACKAGE) -> FeedPackage:
    """Read binary package ``package`` from ``openwrt/<directory>/Makefile``."""
    makefile = Path("openwrt") / directory / "Makefile"
    variables, defines = parse_makefile((repo / makefile).read_text(encoding="utf-8"))
    fields = define_assignments(defines[f"Package/{package}"])
    depends = tuple(_plain_dependency(word, makefile) for word in fields.get("DEPENDS", "").split())
    return FeedPackage(
        name=package,
        source=_literal(variables, "PKG_NAME", makefile),
        version=_literal(variables, "PKG_VERSION", makefile),
        release=_literal(variables, "PKG_RELEASE", makefile),
        license=_literal(variables, "PKG_LICENSE", makefile),
        license_files=variables.get("PKG_LICENSE_FILES", ""),
        maintainer=_literal(variables, "PKG_MAINTAINER", makefile),
        section=_literal(fields, "SECTION", makefile),
        title=_literal(fields, "TITLE", makefile),
        url=fields.get("URL", ""),  # optional, as in OpenWrt
        depends=depends,
        description=_dedent_block(defines.get(f"Package/{package}/description", "")),
        conffiles=tuple(line.strip() for line in defines.get(f"Package/{package}/conffiles", "").splitlines()
                        if line.strip()),
        pkg_hash=variables.get("PKG_HASH", ""),
        pypi_name=variables.get("PYPI_NAME", ""),
    )


def _literal(values: Mapping[str, str], name: str, makefile: Path) -> str:
    value = values.get(name, "")
    if not value or "$(" in value:
        # mkipk does not expand make variables: keep these fields literal.
        raise ValueError(f"{makefile}: {name} must be a literal value, got {value!r}")
    return value


def _plain_dependency(word: str, makefile: Path) -> str:
    if not word.startswith("+") or ":" in word or word.startswith("@"):
        # Conditional (+FOO:pkg) or menu-only (@FOO) dependencies depend on the
        # build configuration; there is none without an SDK.
        raise ValueError(f"{makefile}: unsupported dependency {word!r} (use +package)")
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


def sh_files(sdist: Path, python_version: str = DEFAULT_PYTHON_VERSION) -> dict[str, FileContent]:
    """What python3-sh installs: sh 1.x is the one module ``sh.py``."""
    from tools.pypi import read_members

    members = read_members(sdist)
    if "sh.py" not in members:
        raise ValueError(f"{sdist.name} holds no sh.py (sh 2.x is a package: not what python-sh builds)")
    return {f"{site_packages(python_version)}/sh.py": (members["sh.py"], FILE_MODE)}


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
        "Source": f"feeds/pineapple/{pkg.source}",
        "SourceName": pkg.source,
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


def build_package(out_dir: Path, pkg: FeedPackage, files: Mapping[str, FileContent], mtime: int,
                  repo: Path = REPO) -> Path:
    """One .ipk with OpenWrt's generated maintainer scripts and Installed-Size."""
    ipk = _ipk_module(repo)
    scripts = {"postinst": POSTINST, "prerm": PRERM}

    def _build(size: int | None) -> Path:
        return ipk.build_ipk(out_dir, control_fields(pkg, size), files, conffiles=pkg.conffiles,
                             scripts=scripts, mtime=mtime)

    # Installed-Size as OpenWrt's ipkg-build computes it: the length of the
    # uncompressed data tar. Only known once the tar exists, so build twice.
    first = _build(None)
    size = len(gzip.decompress(ipk.read_ipk(first)[1]["./data.tar.gz"]))
    return _build(size)


def build(out_dir: Path, repo: Path = REPO, python_version: str = DEFAULT_PYTHON_VERSION,
          mtime: int | None = None) -> Path:
    """Build pineapple-jobd's .ipk into ``out_dir`` and return its path."""
    pkg = load_feed_package(repo)
    _check_version(pkg, repo)
    stamp = source_date_epoch(repo) if mtime is None else mtime
    return build_package(out_dir, pkg, package_files(repo, python_version), stamp, repo)


def build_sh(out_dir: Path, dl_dir: Path, repo: Path = REPO, python_version: str = DEFAULT_PYTHON_VERSION,
             mtime: int | None = None) -> Path:
    """Build python3-sh's .ipk from the sdist python-sh's Makefile names
    (checked against its PKG_HASH) and return its path."""
    from tools.pypi import fetch_sdist

    pkg = load_feed_package(repo, SH_DIRECTORY, SH_PACKAGE)
    sdist = fetch_sdist(pkg.pypi_name, pkg.version, pkg.pkg_hash, dl_dir)
    stamp = source_date_epoch(repo) if mtime is None else mtime
    return build_package(out_dir, pkg, sh_files(sdist, python_version), stamp, repo)


def build_all(out_dir: Path, dl_dir: Path, repo: Path = REPO, python_version: str = DEFAULT_PYTHON_VERSION,
              mtime: int | None = None) -> list[Path]:
    """Both packages of this feed: pineapple-jobd, python3-sh."""
    return [build(out_dir, repo, python_version, mtime), build_sh(out_dir, dl_dir, repo, python_version, mtime)]


def build_feed(feed_dir: Path, dl_dir: Path, repo: Path = REPO, python_version: str = DEFAULT_PYTHON_VERSION,
               mtime: int | None = None) -> list[Path]:
    """Build both packages into ``feed_dir`` (dropping older builds of them)
    and index the feed; returns the .ipk paths."""
    ipk = _ipk_module(repo)
    feed_dir.mkdir(parents=True, exist_ok=True)
    for name in (PACKAGE, SH_PACKAGE):
        for old in feed_dir.glob(f"{name}_*.ipk"):
            old.unlink()
    built = build_all(feed_dir, dl_dir, repo, python_version, mtime)
    ipk.index_feed(feed_dir)
    return built


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
    sub = parser.add_subparsers(dest="command")
    sub.required = True  # Python 3.7 has no add_subparsers(required=)
    for name, default_out, text in (("ipk", "dist", "build the .ipk files and report the footprint"),
                                    ("feed", "dist/feed", "build the .ipk files into a feed and index it")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--out", type=Path, default=REPO / default_out, help=f"output directory ({default_out})")
        cmd.add_argument("--python-version", default=DEFAULT_PYTHON_VERSION,
                         help=f"target Python X.Y, for the site-packages path (default {DEFAULT_PYTHON_VERSION}; "
                              "3.7 for OpenWrt 19.07, 3.11 for 23.05/24.10)")
        cmd.add_argument("--dl", type=Path, default=REPO / "dist" / "dl",
                         help="where PyPI sdists are kept, as the SDK's dl/ (dist/dl)")
        cmd.add_argument("--mtime", type=int, help="timestamp of every member (default: SOURCE_DATE_EPOCH, "
                                                   "else the last commit's time)")
        cmd.add_argument("--free-kb", type=int, help="free flash on the device in KiB (`df -k /overlay`, "
                                                     "column Available), to check the footprint against")
        cmd.add_argument("--index", type=Path, action="append", default=[],
                         help="a release feed's Packages(.gz) for exact sizes of the packages pulled in "
                              "(the device's /var/opkg-lists/*); repeatable")
        cmd.add_argument("--no-report", action="store_true", help="build only")
    return parser


def main(argv: list[str] | None = None) -> int:
    from tools.footprint import FootprintError, report
    from tools.pypi import SdistError

    args = _parser().parse_args(argv)
    try:
        if args.command == "ipk":
            built = build_all(args.out, args.dl, python_version=args.python_version, mtime=args.mtime)
        else:
            built = build_feed(args.out, args.dl, python_version=args.python_version, mtime=args.mtime)
        for path in built:
            print(path)
        if not args.no_report:
            print()
            print(report(built, args.python_version, indexes=args.index, free_kb=args.free_kb, dl_dir=args.dl))
    except (ValueError, OSError, KeyError, SdistError, FootprintError) as exc:
        print(f"mkipk: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
