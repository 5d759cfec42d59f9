"""Shared pieces of the OpenWrt packaging tests: the builder, the feed
Makefiles, stub dependency packages and running the installed tree."""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from devtools import ipk
from devtools.sandbox import PackageSpec, Sandbox
from tests.openwrt.stdlib_split import SUBPACKAGE_DEPENDS
from tools import mkipk

REPO = mkipk.REPO
OPENWRT = REPO / "openwrt"
PYTHON_VERSION = mkipk.DEFAULT_PYTHON_VERSION
SITE = mkipk.site_packages(PYTHON_VERSION)
STDLIB_VERSION = "3.11.10-1"  # python3-* of OpenWrt 24.10, for the stubs


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
        "python3-paho-mqtt": plain_depends(makefile_package("python-paho-mqtt", "python3-paho-mqtt")["DEPENDS"]),
    }


def stub_packages(paho_version: str | None = None) -> list[PackageSpec]:
    """Tiny stand-ins for every package pineapple-jobd needs, with the
    dependencies the real ones declare (python3-sh and python3-paho-mqtt from
    this feed's Makefiles, the stdlib parts from OpenWrt's python3 Makefile)."""
    ours = feed_dependencies()
    sh = makefile_package("python-sh", "python3-sh")
    paho = makefile_package("python-paho-mqtt", "python3-paho-mqtt")
    specs = [PackageSpec("libc", "1.2.5-1"), PackageSpec("python3-light", STDLIB_VERSION, depends=["libc"])]
    stdlib = {dep for deps in ours.values() for dep in deps if dep.startswith("python3-")}
    stdlib -= {"python3-light", "python3-sh", "python3-paho-mqtt"}
    stdlib |= {dep for name in stdlib for dep in SUBPACKAGE_DEPENDS.get(name, ())}
    for name in sorted(stdlib):
        depends = ["python3-light", *sorted(SUBPACKAGE_DEPENDS.get(name, ()))]
        specs.append(PackageSpec(name, STDLIB_VERSION, depends=depends))
    specs.append(PackageSpec("python3-sh", f"{sh['PKG_VERSION']}-{sh['PKG_RELEASE']}", depends=ours["python3-sh"]))
    specs.append(PackageSpec("python3-paho-mqtt", paho_version or f"{paho['PKG_VERSION']}-{paho['PKG_RELEASE']}",
                             depends=ours["python3-paho-mqtt"]))
    return specs


def make_sandbox(base: Path, ipk_path: Path, paho_version: str | None = None) -> Sandbox:
    """A feed with the stubs and the built .ipk, updated, libc installed."""
    sandbox = Sandbox.create(base, packages=stub_packages(paho_version), update=False)
    shutil.copy2(ipk_path, sandbox.feed_dir / ipk_path.name)
    ipk.index_feed(sandbox.feed_dir)
    sandbox.run("update", check=True)
    sandbox.run("install", "libc", check=True)
    return sandbox


def third_party_site(*modules: str) -> list[str]:
    """The site-packages directories holding ``modules`` (sh, paho) on this
    host, to stand in for python3-sh / python3-paho-mqtt."""
    dirs: list[str] = []
    for name in modules:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin, f"{name} is not installed"
        path = Path(spec.origin).parents[name.count(".") + 1]
        if str(path) not in dirs:
            dirs.append(str(path))
    return dirs


def installed_python_env(root: Path, base_env: dict[str, str] | None = None) -> dict[str, str]:
    """Environment to run the installed tree with the host Python: its
    site-packages first, then the host's sh/paho. Use with ``python -S`` so
    the venv's editable install of this checkout is not on the path."""
    env = dict(base_env if base_env is not None else os.environ)
    for name in ("PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH"):
        env.pop(name, None)
    paths = [str(root / SITE.lstrip("/")), *third_party_site("sh", "paho.mqtt")]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # as on OpenWrt; keeps the root clean too
    return env


def run_installed(root: Path, args: list[str], cwd: Path, env: dict[str, str] | None = None,
                  timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``python -S ARGS`` against the installed tree."""
    return subprocess.run([sys.executable, "-S", *args], cwd=cwd, env=installed_python_env(root, env),
                          capture_output=True, text=True, timeout=timeout)


def option_defaults(settings_class: type) -> dict[str, object]:
    """Option name -> default of one settings class (declared as ``OPTIONS``
    entries, or as dataclass fields in older revisions)."""
    if hasattr(settings_class, "OPTIONS"):
        return {o.name: list(o.default) if isinstance(o.default, list) else o.default
                for o in settings_class.OPTIONS}
    return {f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default
            for f in dataclasses.fields(settings_class)}
