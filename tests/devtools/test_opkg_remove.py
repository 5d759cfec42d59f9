"""opkg stand-in: remove, autoremove, dependents, conffiles."""
from __future__ import annotations

from devtools.sandbox import Sandbox

from .conftest import Runner, errors

DEPENDENTS_WARNING = errors(
    "print_dependents_warning: Package mylib is depended upon by packages:",
    "print_dependents_warning: \tmyapp",
    "print_dependents_warning: These might cease to work if package mylib is removed.\n",
    "print_dependents_warning: Force removal of this package with --force-depends.",
    "print_dependents_warning: Force removal of this package and its dependents",
    "print_dependents_warning: with --force-removal-of-dependent-packages.",
)


def test_remove_ok_deletes_files_info_and_status(sandbox: Sandbox, opkg: Runner) -> None:
    opkg("install", "myapp")
    result = opkg("remove", "myapp")
    assert (result.stdout, result.stderr, result.returncode) == ("Removing package myapp from root...\n", "", 0)
    assert sandbox.installed() == {"mylib": "1.0-1"}
    assert not sandbox.path("/usr/bin/myapp").exists()
    assert not list(sandbox.info_dir().glob("myapp.*"))
    assert sandbox.path("/usr/bin").is_dir()  # opkg leaves directories alone


def test_autoremove_removes_orphaned_auto_installed_deps(sandbox: Sandbox, opkg: Runner) -> None:
    opkg("install", "myapp")
    result = opkg("remove", "--autoremove", "myapp")
    assert result.stdout == (
        "Removing package myapp from root...\n"
        "mylib was autoinstalled and is now orphaned, removing.\n"
        "Removing package mylib from root...\n"
    )
    assert (result.stderr, result.returncode) == ("", 0)
    assert sandbox.installed() == {}


def test_autoremove_keeps_user_installed_deps(sandbox: Sandbox, opkg: Runner) -> None:
    opkg("install", "mylib")
    opkg("install", "myapp")
    result = opkg("remove", "--autoremove", "myapp")
    assert result.stdout == "Removing package myapp from root...\n"
    assert sandbox.installed() == {"mylib": "1.0-1"}


def test_remove_not_installed_is_not_an_error(opkg: Runner) -> None:
    result = opkg("remove", "nosuchpkg")
    assert (result.stdout, result.stderr, result.returncode) == ("No packages removed.\n", "", 0)


def test_remove_with_dependents_is_refused(sandbox: Sandbox, opkg: Runner) -> None:
    opkg("install", "myapp")
    result = opkg("remove", "mylib")
    assert result.stdout == "No packages removed.\n"
    assert result.stderr == DEPENDENTS_WARNING
    assert result.returncode == 255
    assert sandbox.installed() == {"myapp": "1.2.3-1", "mylib": "1.0-1"}


def test_force_depends_removes_anyway(sandbox: Sandbox, opkg: Runner) -> None:
    opkg("install", "myapp")
    result = opkg("remove", "--force-depends", "mylib")
    assert (result.stdout, result.returncode) == ("Removing package mylib from root...\n", 0)
    assert sandbox.installed() == {"myapp": "1.2.3-1"}


def test_force_removal_of_dependent_packages(sandbox: Sandbox, opkg: Runner) -> None:
    opkg("install", "myapp")
    result = opkg("remove", "--force-removal-of-dependent-packages", "mylib")
    assert result.stdout == "Removing package myapp from root...\nRemoving package mylib from root...\n"
    assert sandbox.installed() == {}


def test_unpacked_package_does_not_count_as_dependent(sandbox: Sandbox, opkg: Runner) -> None:
    # failpkg stays "unpacked"; opkg only counts fully installed dependents
    opkg("install", "mylib", "failpkg")
    assert opkg("remove", "failpkg").stdout == "Removing package failpkg from root...\n"
    assert sandbox.installed() == {"mylib": "1.0-1"}


def test_remove_keeps_modified_conffile(sandbox: Sandbox, opkg: Runner) -> None:
    opkg("install", "cfgpkg")
    conffile = sandbox.path("/etc/config/cfgpkg")
    conffile.write_text("mine\n")
    result = opkg("remove", "cfgpkg")
    assert result.stdout == f"Removing package cfgpkg from root...\nNot deleting modified conffile {conffile}.\n"
    assert conffile.read_text() == "mine\n"
    assert not sandbox.path("/usr/bin/cfgpkg").exists()


def test_remove_deletes_unmodified_conffile(sandbox: Sandbox, opkg: Runner) -> None:
    opkg("install", "cfgpkg")
    opkg("remove", "cfgpkg")
    assert not sandbox.path("/etc/config/cfgpkg").exists()


def test_remove_noaction_changes_nothing(sandbox: Sandbox, opkg: Runner) -> None:
    opkg("install", "mylib")
    before = sandbox.status_path().read_text()
    result = opkg("--noaction", "remove", "mylib")
    assert result.stdout == "Removing package mylib from root...\n"
    assert sandbox.status_path().read_text() == before
    assert sandbox.path("/usr/share/mylib/README").exists()
    assert (sandbox.info_dir() / "mylib.list").exists()


def test_remove_from_a_dest_and_by_pattern(sandbox: Sandbox, opkg: Runner) -> None:
    opkg("-d", "sd", "install", "myapp")
    result = opkg("remove", "my*", "--force-depends")
    assert sorted(result.stdout.splitlines()) == ["Removing package myapp from sd...",
                                                  "Removing package mylib from sd..."]
    assert sandbox.installed() == {}
    assert not sandbox.path("/usr/bin/myapp", dest="sd").exists()
