"""Shared pieces of the OpenWrt packaging tests: the builder, the feed
Makefiles, a stand-in of a release feed and running the installed tree
with the target's Python.

The release feed offers what a real one offers to this feed's packages
(tools/releases.py): libc, python3-light and the standard-library
sub-packages as empty stand-ins declaring the real dependencies (their
modules come from the target interpreter), and the release's own
python3-paho-mqtt (1.5.1 or 1.6.1) holding the real paho code from its
PyPI sdist. python3-sh and pineapple-jobd come from this feed, as built.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from devtools import ipk
from devtools.sandbox import PackageSpec, Sandbox
from tests.fixtures.opkgs import OPKGS  # noqa: F401 - the tests take it from here
from tools import footprint, mkipk, pypi
from tools.releases import release_for

REPO = mkipk.REPO
OPENWRT = REPO / "openwrt"
PYTHON_VERSION = mkipk.DEFAULT_PYTHON_VERSION
SITE = mkipk.site_packages(PYTHON_VERSION)
TARGETS = ("3.7", "3.11")  # OpenWrt 19.07 (the MK7), 23.05/24.10
# PyPI sdists are kept here between runs (as the SDK's dl/).
DL_DIR = Path(os.environ.get("PINEAPPLE_DL_DIR", os.path.expanduser("~/.cache/pineapple-jobd/dl")))


def makefile_package(directory: str, package: str) -> dict[str, str]:
    """PKG_* variables plus the fields of ``define Package/<package>``."""
    variables, defines = mkipk.parse_makefile((OPENWRT / directory / "Makefile").read_text())
    fields = mkipk.define_assignments(defines[f"Package/{package}"])
    return {**variables, **fields}


def plain_depends(value: str) -> list[str]:
    """``+a +b`` -> ``["a", "b"]``."""
    return [word.lstrip("+") for word in value.split()]


def feed_dependencies() -> dict[str, list[str]]:
    """Declared dependencies of the packages this feed provides."""
    return {
        "pineapple-jobd": plain_depends(makefile_package("pineapple-jobd", "pineapple-jobd")["DEPENDS"]),
        "python3-sh": plain_depends(makefile_package("python-sh", "python3-sh")["DEPENDS"]),
    }


def target_interpreter(version: str) -> str:
    """The target's Python on this machine, or skip saying why."""
    interpreter = footprint.find_interpreter(version)
    if interpreter is None:
        pytest.skip(f"no Python {version} here (pyenv install {version}) to run the {version} target")
    return interpreter


def paho_files(version: str, python_version: str) -> dict[str, bytes]:
    """The release's python3-paho-mqtt content: paho's sources from the sdist."""
    sdist = pypi.fetch_sdist("paho-mqtt", version, footprint.PAHO_SDIST_SHA256[version], DL_DIR)
    site = mkipk.site_packages(python_version)
    return {f"{site}/{path[len('src/'):]}": data for path, data in pypi.read_members(sdist).items()
            if path.startswith("src/paho/")}


def release_feed(python_version: str) -> list[PackageSpec]:
    """What the release feed of ``python_version`` offers our packages."""
    release = release_for(python_version)
    specs = [PackageSpec("libc", "1.2.4-4"), PackageSpec("python3-light", release.python, depends=["libc"])]
    for name, depends in sorted(release.depends.items()):
        if name == "python3-paho-mqtt":
            files = paho_files(release.paho.split("-")[0], python_version)
            specs.append(PackageSpec(name, release.paho, depends=list(depends), files=files))
        else:
            specs.append(PackageSpec(name, release.python, depends=list(depends)))
    return specs


def build_ours(out_dir: Path, python_version: str, repo: Path = REPO, mtime: int | None = None) -> dict[str, Path]:
    """This feed's packages for ``python_version``: package name -> .ipk."""
    paths = mkipk.build_all(out_dir, DL_DIR, repo=repo, python_version=python_version, mtime=mtime)
    return {path.name.split("_")[0]: path for path in paths}


def make_sandbox(base: Path, ours: dict[str, Path], python_version: str) -> Sandbox:
    """A release feed and this feed ("pineapple", as customfeeds.conf adds
    it), updated, libc installed."""
    sandbox = Sandbox.create(base, packages=release_feed(python_version), feeds={"pineapple": []}, update=False)
    for path in ours.values():
        shutil.copy2(path, sandbox.feeds["pineapple"] / path.name)
    ipk.index_feed(sandbox.feeds["pineapple"])
    sandbox.run("update", check=True)
    sandbox.run("install", "libc", check=True)
    return sandbox


def opkg(sandbox: Sandbox, binary: str, *args: str, env: dict[str, str] | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``binary`` (the stand-in when empty) on the sandbox."""
    argv = sandbox.argv(*args)
    if binary:
        argv[0] = binary
    return subprocess.run(argv, env=env or sandbox.env(), capture_output=True, text=True, timeout=timeout)


def installed_python_env(root: Path, python_version: str, base_env: dict[str, str] | None = None) -> dict[str, str]:
    """Environment to run the installed tree: its site-packages only (sh and
    paho are the installed ones), as on the device."""
    env = dict(base_env if base_env is not None else os.environ)
    for name in ("PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH", "VIRTUAL_ENV"):
        env.pop(name, None)
    env["PYTHONPATH"] = str(root / mkipk.site_packages(python_version).lstrip("/"))
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # keeps the root clean
    return env


def run_installed(root: Path, python_version: str, args: list[str], cwd: Path, env: dict[str, str] | None = None,
                  timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``pythonX.Y -S ARGS`` against the installed tree (-S: no site
    directories of this machine, so only the root's packages import)."""
    return subprocess.run([target_interpreter(python_version), "-S", *args], cwd=cwd,
                          env=installed_python_env(root, python_version, env),
                          capture_output=True, text=True, timeout=timeout)


def option_defaults(settings_class: type) -> dict[str, object]:
    """Option name -> default of one settings class (its ``OPTIONS``)."""
    return {o.name: list(o.default) if isinstance(o.default, list) else o.default for o in settings_class.OPTIONS}
