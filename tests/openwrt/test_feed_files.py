"""The feed's files against the code: the default UCI config against the
settings classes, the procd init script's behaviour, the Makefiles'
versions and dependencies against what is imported."""
from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pineapple
from devtools import ipk
from devtools.sandbox import Sandbox
from pineapple.daemon.config import SECTIONS, load_config
from pineapple.uci import load_uci
from tests.openwrt.helpers import (
    DL_DIR,
    OPENWRT,
    feed_dependencies,
    installed_python_env,
    makefile_package,
    option_defaults,
    target_interpreter,
)
from tests.openwrt.stdlib_split import SUBPACKAGE_MODULES, blocked_modules, closure, subpackage_of
from tools import mkipk
from tools.releases import release_for


def _stdlib_names() -> set[str]:
    """Top-level standard-library names (sys.stdlib_module_names is 3.10+)."""
    if hasattr(sys, "stdlib_module_names"):
        return set(sys.stdlib_module_names)
    import os

    stdlib = Path(os.__file__).parent
    names = set(sys.builtin_module_names)
    for directory in (stdlib, stdlib / "lib-dynload"):
        names |= {entry.name.split(".")[0] for entry in directory.iterdir() if entry.name != "site-packages"}
    return names


STDLIB = _stdlib_names()
FILES = OPENWRT / "pineapple-jobd" / "files"
CONFIG = FILES / "pineapple-jobd.config"
INIT = FILES / "pineapple-jobd.init"
# UCI section type -> the section name the init script and docs use
SECTION_NAMES = {"daemon": "main", "opkg": "opkg", "mqtt": "mqtt"}


# -- the default UCI config ------------------------------------------------------


def test_config_lists_every_option_with_its_default() -> None:
    sections = {section.type: section for section in load_uci(str(CONFIG))}
    text = CONFIG.read_text()
    for section_type, (_attr, settings_class) in SECTIONS.items():
        section = sections[section_type]
        assert section.name == SECTION_NAMES[section_type]
        defaults = option_defaults(settings_class)
        unknown = set(section.options) - set(defaults)
        assert not unknown, f"{section_type}: options the daemon does not know: {unknown}"
        for option, default in defaults.items():
            if default == []:
                # UCI cannot write an empty list (and `uci add_list` would keep
                # an `option x ''` as a first, empty element): a commented example.
                assert option not in section.options
                assert re.search(rf"^\t#list {option} '", text, re.M), f"{section_type}.{option}"
            elif default == "":
                # libuci reads `option x ''` as nothing at all: the line only shows the default
                assert re.search(rf"^\toption {option} ''$", text, re.M), f"{section_type}.{option} missing"
            else:
                assert option in section.options, f"{section_type}.{option} missing"
    config = load_config(str(CONFIG), env={})
    for section_type, (attr, settings_class) in SECTIONS.items():
        assert getattr(config, attr) == settings_class(), section_type


def test_every_option_has_a_comment_naming_its_default() -> None:
    lines = CONFIG.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.startswith("\toption "):
            comments = []
            for previous in reversed(lines[:number]):
                if not previous.startswith("\t#"):
                    break
                comments.append(previous)
            if not comments:  # options of one group share their comment
                continue
            assert any("Default" in c for c in comments), line


def test_service_section_is_ignored_by_the_daemon() -> None:
    config = load_config(str(CONFIG), env={})
    service = [section for section in config.extra_sections if section.type == "service"]
    assert [(s.name, s.options) for s in service] == [("service", {
        "enabled": "1", "respawn_threshold": "3600", "respawn_timeout": "5", "respawn_retry": "5"})]


# -- the procd init script -------------------------------------------------------

# Just enough of /etc/rc.common, /lib/functions.sh and procd.sh to run
# start_service and service_triggers and see what they ask procd for.
PROCD_STUBS = textwrap.dedent("""
    config_load() { [ "$1" = pineapple-jobd ] || exit 9; }
    config_get() {
        eval "_value=\\${CONFIG_$2_$3-}"
        [ -n "$_value" ] || _value="$4"
        eval "$1=\\$_value"
    }
    config_get_bool() {
        config_get "$@"
        eval "_value=\\$$1"
        case "$_value" in
            1|on|true|yes|enabled) eval "$1=1" ;;
            0|off|false|no|disabled) eval "$1=0" ;;
            *) eval "$1=$4" ;;
        esac
    }
    procd_open_instance() { echo "open $*"; }
    procd_set_param() { echo "param $*"; }
    procd_close_instance() { echo "close"; }
    procd_add_reload_trigger() { echo "trigger $*"; }
    procd_send_signal() { echo "signal $*"; }
    start() { start_service; }
    stop() { echo "stop"; }
""")


def run_init(tmp_path: Path, overrides: dict[tuple[str, str], str] | None = None,
             calls: str = "start_service\nservice_triggers\n") -> list[str]:
    """Source the init script with the shipped config (plus overrides), run
    ``calls`` and return what they told procd."""
    values = {(s.name, k): v for s in load_uci(str(CONFIG)) for k, v in s.options.items() if isinstance(v, str)}
    values.update(overrides or {})
    assignments = "".join(f"CONFIG_{section}_{option}={shlex.quote(value)}\n"
                          for (section, option), value in values.items())
    script = tmp_path / "run.sh"
    script.write_text(PROCD_STUBS + assignments + f". {shlex.quote(str(INIT))}\n{calls}")
    result = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_init_script_parses() -> None:
    assert INIT.read_text().startswith("#!/bin/sh /etc/rc.common\n")
    result = subprocess.run(["sh", "-n", str(INIT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = INIT.read_text()
    assert "USE_PROCD=1" in text and re.search(r"^START=\d+$", text, re.M) and re.search(r"^STOP=\d+$", text, re.M)


def test_init_script_asks_procd_for_a_supervised_instance(tmp_path: Path) -> None:
    assert run_init(tmp_path) == [
        "open ",
        "param command /usr/bin/pineapple-jobd --config /etc/config/pineapple-jobd",
        "param respawn 3600 5 5",
        "param term_timeout 45",  # shutdown_grace 30 + 15
        "param stdout 1",
        "param stderr 1",
        "param reload_signal HUP",
        "close",
        "trigger pineapple-jobd",
    ]


def test_reload_signals_the_daemon_instead_of_restarting_it(tmp_path: Path) -> None:
    """`reload` (and reload_config's trigger) must not stop running jobs: it
    passes procd the service section again and sends SIGHUP."""
    lines = run_init(tmp_path, calls="reload_service\n")
    assert "stop" not in lines
    assert lines[0] == "open " and "param reload_signal HUP" in lines
    assert lines[-1] == "signal pineapple-jobd"  # procd's default signal is SIGHUP
    assert not any(line.startswith("param file") for line in lines)  # a changed file would restart it


def test_init_script_follows_the_config(tmp_path: Path) -> None:
    lines = run_init(tmp_path, {("main", "shutdown_grace"): "12.5", ("service", "respawn_retry"): "0"})
    assert "param term_timeout 27" in lines
    assert "param respawn 3600 5 0" in lines
    assert run_init(tmp_path, {("service", "enabled"): "0"}) == ["trigger pineapple-jobd"]


# -- the Makefiles ---------------------------------------------------------------

FEED = [("pineapple-jobd", "pineapple-jobd"), ("python-sh", "python3-sh")]


@pytest.mark.parametrize("directory, package", FEED)
def test_makefiles_follow_the_feed_conventions(directory: str, package: str) -> None:
    text = (OPENWRT / directory / "Makefile").read_text()
    assert text.index("include $(TOPDIR)/rules.mk") < text.index("include $(INCLUDE_DIR)/package.mk")
    assert "include $(TOPDIR)/feeds/packages/lang/python/python3-package.mk" in text
    assert text.count("\ndefine ") == text.count("\nendef")
    for line in (f"$(eval $(call Py3Package,{package}))", f"$(eval $(call BuildPackage,{package}))",
                 f"$(eval $(call BuildPackage,{package}-src))"):
        assert line in text
    fields = makefile_package(directory, package)
    for name in ("PKG_NAME", "PKG_VERSION", "PKG_RELEASE", "PKG_LICENSE", "PKG_LICENSE_FILES", "PKG_MAINTAINER",
                 "PKG_HASH", "SECTION", "CATEGORY", "TITLE", "DEPENDS"):
        assert fields.get(name), name
    assert fields["DEPENDS"].split()[0] == "+python3-light"
    assert re.fullmatch(r"[^<>,]+ <[^<>@\s]+@[^<>@\s]+>", fields["PKG_MAINTAINER"])  # Name <address>
    assert re.fullmatch(r"[0-9a-f]{64}", fields["PKG_HASH"])
    # The standard Py3Package build: no own Build/Compile, no pinned Python.
    assert "define Build/Compile" not in text and "define Build/Prepare" not in text
    assert "PYTHON3_PKG_BUILD:=0" not in text and not re.search(r"python3\.\d+", text)
    assert "PROJECT_DIR" not in text and "PKG_FILE_DEPENDS" not in text


def test_the_release_tarball_is_the_source() -> None:
    fields = makefile_package("pineapple-jobd", "pineapple-jobd")
    assert fields["PKG_SOURCE"] == "$(PKG_NAME)-$(PKG_VERSION).tar.gz"  # what `make dist` names it
    assert fields["PKG_SOURCE_URL"].startswith("https://") and "$(PKG_VERSION)" in fields["PKG_SOURCE_URL"]


@pytest.mark.parametrize("directory, package", FEED)
def test_each_package_has_a_test_script(directory: str, package: str, tmp_path: Path) -> None:
    script = OPENWRT / directory / "test.sh"
    assert script.stat().st_mode & stat.S_IXUSR
    assert subprocess.run(["sh", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert text.startswith("#!/bin/sh\n") and f'[ "$1" = {package} ] || exit 0' in text
    # Another package of the source (the -src one) is not tested.
    assert subprocess.run(["sh", str(script), f"{package}-src", "0"], capture_output=True).returncode == 0


def test_python_sh_is_the_version_the_code_is_tested_with() -> None:
    from tools import pypi

    sh = makefile_package("python-sh", "python3-sh")
    assert (sh["PYPI_NAME"], sh["PKG_VERSION"]) == ("sh", "1.14.3")  # Python 3.7+, no asyncio (sh 2.x needs it)
    # PKG_HASH is the sha256 of PyPI's sdist (fetch_sdist refuses any other).
    sdist = pypi.fetch_sdist("sh", sh["PKG_VERSION"], sh["PKG_HASH"], DL_DIR)
    assert "sh.py" in pypi.read_members(sdist)
    assert makefile_package("pineapple-jobd", "pineapple-jobd")["PKG_VERSION"] == pineapple.__version__


def test_the_feed_package_depends_on_what_setup_py_requires() -> None:
    setup = (OPENWRT.parent / "setup.py").read_text()
    requires = ast.literal_eval(re.search(r"install_requires=(\[[^\]]*\])", setup).group(1))
    bounds = {re.split(r"[<>=!~ ]", req)[0].lower(): req for req in requires}
    assert set(bounds) == {"sh", "paho-mqtt"}
    assert {"python3-sh", "python3-paho-mqtt"} <= set(feed_dependencies()["pineapple-jobd"])
    # The release feeds' paho (1.5.1, 1.6.1) and our sh (1.14.3) are inside setup.py's ranges.
    assert ">=1.5.1" in bounds["paho-mqtt"] and ">=1.14.3" in bounds["sh"]
    assert not (OPENWRT / "python-paho-mqtt").exists()  # the release feed's own package is used


# -- dependencies against imports ---------------------------------------------------


def imported_modules(sources: dict[str, bytes]) -> dict[str, set[str]]:
    """Top-level absolute import name -> files importing it (also inside
    functions: the lazy imports count too)."""
    found: dict[str, set[str]] = {}
    for name, data in sources.items():
        for node in ast.walk(ast.parse(data, name)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                found.setdefault(module.split(".")[0], set()).add(name)
    return found


@pytest.mark.parametrize("package", ["pineapple-jobd", "python3-sh"])
def test_declared_stdlib_packages_are_exactly_the_imported_ones(built: dict, package: str) -> None:
    # What lang/python/python3-find-stdlib-depends.sh would suggest, from
    # the files the package really ships.
    members = ipk.read_ipk(built[package])[1]
    sources = {name: data for name, data in members.items() if name.endswith(".py")}
    imports = imported_modules(sources)
    needed = {subpackage_of(module) for module in imports} - {None}
    declared = set(feed_dependencies()[package])
    declared_stdlib = declared & set(SUBPACKAGE_MODULES)
    assert needed <= declared, {pkg: sorted(files for m, files in imports.items() if subpackage_of(m) == pkg)
                                for pkg in needed - declared}
    assert declared_stdlib <= needed, f"declared but not imported: {declared_stdlib - needed}"
    if package == "pineapple-jobd":
        third_party = {m for m in imports if m not in STDLIB and m != "pineapple"}
        assert third_party == {"sh", "paho"}
        assert {"python3-sh", "python3-paho-mqtt"} <= declared


SWEEP = textwrap.dedent("""
    import sys

    blocked = set(sys.argv[1].split(","))
    preloaded = sorted(blocked & set(sys.modules))
    assert not preloaded, preloaded

    class NotInstalled:
        # What a device without the package holding these modules does.
        # (A plain class: importlib.abc itself would import zipfile -> lzma.)
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ModuleNotFoundError(f"No module named {name!r} (not installed)", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    import importlib, json, pkgutil

    failures = {}
    for name in sys.argv[2:]:
        names = [name]
        if name == "pineapple":
            package = importlib.import_module("pineapple")
            names += [m.name for m in pkgutil.walk_packages(package.__path__, "pineapple.")]
        for module in names:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                failures[module] = str(exc)
    print(json.dumps(failures))
""")


def sweep(installed_root: Path, target: str, tmp_path: Path, installed_packages: set[str],
          modules: list[str]) -> dict:
    """Import ``modules`` (``pineapple`` = all of it) with the target's
    Python and the stdlib parts of every package outside
    ``installed_packages`` made unimportable."""
    blocked = sorted(blocked_modules(installed_packages, target))
    result = subprocess.run([target_interpreter(target), "-S", "-c", SWEEP, ",".join(blocked), *modules],
                            cwd=tmp_path, env=installed_python_env(installed_root, target), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def release_graph(target: str) -> dict[str, set[str]]:
    """Declared dependencies of ours and of the release's packages."""
    graph = {name: set(deps) for name, deps in feed_dependencies().items()}
    graph.update({name: set(deps) for name, deps in release_for(target).depends.items()})
    return graph


def test_everything_imports_with_only_the_declared_packages(installed_template: Sandbox, tmp_path: Path,
                                                            target: str) -> None:
    # The runtime closure: python3-light plus what the Depends chains bring.
    graph = release_graph(target)
    root = installed_template.root
    assert sweep(root, target, tmp_path, closure(graph["pineapple-jobd"], graph), ["pineapple"]) == {}
    assert sweep(root, target, tmp_path, closure(graph["python3-sh"], graph), ["sh"]) == {}


def test_the_release_paho_needs_what_pineapple_jobd_brings(installed_template: Sandbox, tmp_path: Path,
                                                           target: str) -> None:
    # The release's python3-paho-mqtt under-declares: its client imports
    # logging and urllib. pineapple-jobd's own DEPENDS cover both.
    graph = release_graph(target)
    root = installed_template.root
    alone = sweep(root, target, tmp_path, closure(graph["python3-paho-mqtt"], graph), ["paho.mqtt.client"])
    assert "paho.mqtt.client" in alone
    assert sweep(root, target, tmp_path, closure({"python3-paho-mqtt", "python3-logging", "python3-urllib"}, graph),
                 ["paho.mqtt.client"]) == {}


def test_the_sweep_notices_a_missing_package(installed_template: Sandbox, tmp_path: Path, target: str) -> None:
    graph = release_graph(target)
    without_logging = closure(graph["pineapple-jobd"], graph) - {"python3-logging"}
    failures = sweep(installed_template.root, target, tmp_path, without_logging, ["pineapple"])
    assert "pineapple.daemon.main" in failures and "logging" in failures["pineapple.daemon.main"]


# -- the SDK recipes, run against a stub of OpenWrt's build system --------------
# What include/package.mk and lang/python/python3-package.mk do for this
# package, in few lines: Build/Prepare unpacks PKG_SOURCE from dl/, the
# default Py3Build builds a wheel (`python -m build --no-isolation --wheel`)
# and installs it (`python -m installer --destdir PKG_INSTALL_DIR --prefix
# /usr`), and Package/<name>/install runs Py3Package/<name>/install plus the
# default filespec (+|$(PYTHON3_PKG_DIR)) before its compileall.

STUB_RULES = """\
INCLUDE_DIR:=$(TOPDIR)/include
BUILD_DIR:=$(TOPDIR)/build
DL_DIR:=$(TOPDIR)/dl
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_DATA:=install -m0644
INSTALL_CONF:=install -m0600
CP:=cp -fpR
"""
STUB_PACKAGE_MK = """\
PKG_BUILD_DIR?=$(BUILD_DIR)/$(PKG_NAME)-$(PKG_VERSION)
PKG_INSTALL_DIR?=$(PKG_BUILD_DIR)/ipkg-install
BuildPackage=
define Build/Prepare
\tmkdir -p $(BUILD_DIR) && tar -xzf $(DL_DIR)/$(PKG_SOURCE) -C $(BUILD_DIR)
endef
"""
STUB_PYTHON3_PACKAGE_MK = """\
PYTHON3_VERSION:={version}
PYTHON3_PKG_DIR:=/usr/lib/python$(PYTHON3_VERSION)/site-packages
HOST_PYTHON3_BIN:={python}
Py3Package=
define Build/Compile
{compile}
endef
"""
# Py3Build on 22.03 and later: a wheel, installed.
WHEEL_BUILD = """\
\tcd $(PKG_BUILD_DIR) && $(HOST_PYTHON3_BIN) -m build --no-isolation --wheel --outdir openwrt-build .
\t$(HOST_PYTHON3_BIN) -m installer --destdir $(PKG_INSTALL_DIR) --no-compile-bytecode --prefix /usr \\
\t\t$(PKG_BUILD_DIR)/openwrt-build/pineapple_jobd-$(PKG_VERSION)-*.whl"""
# Py3Build on 19.07 and 21.02: setup.py install.
SETUP_PY_BUILD = """\
\tcd $(PKG_BUILD_DIR) && $(HOST_PYTHON3_BIN) setup.py install --prefix=/usr --root=$(PKG_INSTALL_DIR) \\
\t\t--single-version-externally-managed"""
STUB_DRIVER = """\
include Makefile
.PHONY: sdk-stub
sdk-stub:
\t$(Build/Prepare)
\t$(Build/Compile)
\t$(call Py3Package/pineapple-jobd/install,$(DEST))
\t$(INSTALL_DIR) $(DEST)$(PYTHON3_PKG_DIR)
\t$(CP) $(PKG_INSTALL_DIR)$(PYTHON3_PKG_DIR)/. $(DEST)$(PYTHON3_PKG_DIR)/
"""


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("style", ["wheel", "setup.py"])
def test_the_sdk_build_of_the_release_tarball_installs_what_make_ipk_packs(tmp_path: Path, style: str) -> None:
    from tools import mkdist

    if style == "wheel":  # the host Python is the target's in an SDK: this one
        pytest.importorskip("build", reason="needs the build, installer and wheel packages (requirements-dev.txt)")
        pytest.importorskip("installer", reason="needs the installer package (requirements-dev.txt)")
        python, version, compile_recipe = sys.executable, "{}.{}".format(*sys.version_info[:2]), WHEEL_BUILD
    else:  # 19.07 builds with its Python 3.7 and setuptools
        python, version, compile_recipe = target_interpreter("3.7"), "3.7", SETUP_PY_BUILD

    top = tmp_path / "top"
    tarball = mkdist.build(top / "dl")  # what PKG_SOURCE names, as `make dist` builds it
    for relative, text in (("rules.mk", STUB_RULES), ("include/package.mk", STUB_PACKAGE_MK),
                           ("feeds/packages/lang/python/python3-package.mk",
                            STUB_PYTHON3_PACKAGE_MK.format(python=python, version=version,
                                                           compile=compile_recipe)),
                           ("driver.mk", STUB_DRIVER)):
        (top / relative).parent.mkdir(parents=True, exist_ok=True)
        (top / relative).write_text(text)
    dest = tmp_path / "ipkg-all"
    result = subprocess.run(["make", "-s", "-C", str(OPENWRT / "pineapple-jobd"), "-f", str(top / "driver.mk"),
                             f"TOPDIR={top}", f"DEST={dest}", "sdk-stub"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert tarball.name == f"pineapple-jobd-{pineapple.__version__}.tar.gz"
    installed = {"/" + p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    site = mkipk.site_packages(version)
    metadata = {path for path in installed if path.startswith(f"{site}/pineapple_jobd-")}
    assert metadata  # the wheel's .dist-info (.egg-info from setup.py), which make ipk leaves out
    assert installed - metadata == set(mkipk.package_files(python_version=version))
