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
from pineapple.daemon.uci import load_uci
from tests.openwrt.helpers import (
    OPENWRT,
    SITE,
    feed_dependencies,
    installed_python_env,
    makefile_package,
    option_defaults,
)
from tests.openwrt.stdlib_split import SUBPACKAGE_MODULES, blocked_modules, closure, subpackage_of
from tools import mkipk

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


@pytest.mark.parametrize("directory, package", [("pineapple-jobd", "pineapple-jobd"),
                                                 ("python-sh", "python3-sh"),
                                                 ("python-paho-mqtt", "python3-paho-mqtt")])
def test_makefiles_follow_the_feed_conventions(directory: str, package: str) -> None:
    text = (OPENWRT / directory / "Makefile").read_text()
    assert text.index("include $(TOPDIR)/rules.mk") < text.index("include $(INCLUDE_DIR)/package.mk")
    assert "include $(TOPDIR)/feeds/packages/lang/python/python3-package.mk" in text
    assert text.count("\ndefine ") == text.count("\nendef")
    for line in (f"$(eval $(call Py3Package,{package}))", f"$(eval $(call BuildPackage,{package}))",
                 f"$(eval $(call BuildPackage,{package}-src))"):
        assert line in text
    fields = makefile_package(directory, package)
    for name in ("PKG_NAME", "PKG_VERSION", "PKG_RELEASE", "PKG_LICENSE", "PKG_MAINTAINER", "SECTION",
                 "CATEGORY", "TITLE", "DEPENDS"):
        assert fields.get(name), name
    assert fields["DEPENDS"].split()[0] == "+python3-light"


def test_versions_match_what_is_tested() -> None:
    import importlib.metadata  # Python 3.8+; the feed tests run on the default python3

    assert makefile_package("pineapple-jobd", "pineapple-jobd")["PKG_VERSION"] == pineapple.__version__
    for directory, package, dist in (("python-sh", "python3-sh", "sh"),
                                     ("python-paho-mqtt", "python3-paho-mqtt", "paho-mqtt")):
        fields = makefile_package(directory, package)
        assert fields["PKG_VERSION"] == importlib.metadata.version(dist), directory
        assert re.fullmatch(r"[0-9a-f]{64}", fields["PKG_HASH"]), directory
    # What EXTRA_DEPENDS asks of paho-mqtt is what the tested version gives.
    constraint = makefile_package("pineapple-jobd", "pineapple-jobd")["EXTRA_DEPENDS"]
    minimum = re.fullmatch(r"python3-paho-mqtt \(>= ([\d.]+)\)", constraint).group(1)
    installed = tuple(int(p) for p in importlib.metadata.version("paho-mqtt").split(".")[:2])
    assert installed >= tuple(int(p) for p in minimum.split("."))


def test_the_feed_package_depends_on_what_setup_py_requires() -> None:
    setup = (OPENWRT.parent / "setup.py").read_text()
    requires = ast.literal_eval(re.search(r"install_requires=(\[[^\]]*\])", setup).group(1))
    names = {re.split(r"[<>=!~ ]", req)[0].lower() for req in requires}
    mapping = {"sh": "python3-sh", "paho-mqtt": "python3-paho-mqtt"}
    assert {mapping[name] for name in names} <= set(feed_dependencies()["pineapple-jobd"])


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


def test_declared_stdlib_packages_are_exactly_the_imported_ones(built_ipk: Path) -> None:
    # What lang/python/python3-find-stdlib-depends.sh would suggest, from
    # the files the package really ships.
    members = ipk.read_ipk(built_ipk)[1]
    sources = {name: data for name, data in members.items() if name.endswith(".py")}
    imports = imported_modules(sources)
    needed = {subpackage_of(module) for module in imports} - {None}
    declared = set(feed_dependencies()["pineapple-jobd"])
    declared_stdlib = declared & set(SUBPACKAGE_MODULES)
    assert needed <= declared, {pkg: sorted(files for m, files in imports.items() if subpackage_of(m) == pkg)
                                for pkg in needed - declared}
    assert declared_stdlib <= needed, f"declared but not imported: {declared_stdlib - needed}"
    third_party = {m for m in imports if m not in sys.stdlib_module_names and m != "pineapple"}
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


def sweep(installed_root: Path, tmp_path: Path, installed_packages: set[str], modules: list[str]) -> dict:
    """Import ``modules`` (``pineapple`` = all of it) with the stdlib parts
    of every package outside ``installed_packages`` made unimportable."""
    blocked = sorted(blocked_modules(installed_packages))
    result = subprocess.run([sys.executable, "-S", "-c", SWEEP, ",".join(blocked), *modules], cwd=tmp_path,
                            env=installed_python_env(installed_root), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_everything_imports_with_only_the_declared_packages(installed_template: Sandbox, tmp_path: Path) -> None:
    # The runtime closure: python3-light plus what the Depends chains bring.
    ours = {name: set(deps) for name, deps in feed_dependencies().items()}
    root = installed_template.root
    assert sweep(root, tmp_path, closure(ours["pineapple-jobd"], ours), ["pineapple"]) == {}
    assert sweep(root, tmp_path, closure(ours["python3-sh"], ours), ["sh"]) == {}
    assert sweep(root, tmp_path, closure(ours["python3-paho-mqtt"], ours), ["paho.mqtt.client"]) == {}
    assert installed_template.path(SITE).is_dir()


def test_the_sweep_notices_a_missing_package(installed_template: Sandbox, tmp_path: Path) -> None:
    ours = {name: set(deps) for name, deps in feed_dependencies().items()}
    without_logging = closure(ours["pineapple-jobd"], ours) - {"python3-logging"}
    failures = sweep(installed_template.root, tmp_path, without_logging, ["pineapple"])
    assert "pineapple.daemon.main" in failures and "logging" in failures["pineapple.daemon.main"]


# -- the SDK recipes, run against a stub of OpenWrt's build system --------------

STUB_RULES = """\
INCLUDE_DIR:=$(TOPDIR)/include
BUILD_DIR:=$(TOPDIR)/build
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
"""
STUB_PYTHON3_PACKAGE_MK = """\
PYTHON3_VERSION:=3.11
PYTHON3_PKG_DIR:=/usr/lib/python$(PYTHON3_VERSION)/site-packages
HOST_PYTHON3_BIN:={python}
Py3Package=
"""
# Prepare, compile, then what Package/<name>/install does before its
# compileall: Py3Package/<name>/install plus the default filespec
# (+|$(PYTHON3_PKG_DIR)).
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
def test_sdk_recipes_install_what_make_ipk_packs(snapshot: Path, tmp_path: Path) -> None:
    top = tmp_path / "top"
    for relative, text in (("rules.mk", STUB_RULES), ("include/package.mk", STUB_PACKAGE_MK),
                           ("feeds/packages/lang/python/python3-package.mk",
                            STUB_PYTHON3_PACKAGE_MK.format(python=sys.executable)),
                           ("driver.mk", STUB_DRIVER)):
        (top / relative).parent.mkdir(parents=True, exist_ok=True)
        (top / relative).write_text(text)
    dest = tmp_path / "ipkg-all"
    result = subprocess.run(["make", "-s", "-C", str(snapshot / "openwrt" / "pineapple-jobd"),
                             "-f", str(top / "driver.mk"), f"TOPDIR={top}", f"DEST={dest}", "sdk-stub"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    installed = {"/" + p.relative_to(dest).as_posix(): p for p in dest.rglob("*") if p.is_file()}
    expected = mkipk.package_files(snapshot)
    assert set(installed) == set(expected)
    for target, (content, mode) in expected.items():
        assert installed[target].read_bytes() == content, target
        assert stat.S_IMODE(installed[target].stat().st_mode) == mode, target
