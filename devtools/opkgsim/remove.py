"""``opkg remove`` (libopkg/opkg_cmd.c opkg_remove_cmd, opkg_remove.c).

A package other installed packages depend on is refused with
print_dependents_warning's errors (and "No packages removed.") unless
``--force-depends`` (remove anyway) or ``--force-removal-of-dependent-packages``
(remove them too). Files listed in ``info/NAME.list`` are deleted, except
conffiles the user modified ("Not deleting modified conffile ..."); then the
``info/NAME.*`` files go and the status entry disappears when the status file
is rewritten. Directories are left in place (opkg's file lists hold none).
"""
from __future__ import annotations

import fnmatch
import glob
import os

from . import faults, scripts
from .pkgdb import Pkg, conffile_modified
from .runtime import Run


def remove_cmd(run: Run, patterns: list[str]) -> int:
    """opkg_remove_cmd(): returns 0 or -1; "No packages removed." if none was."""
    run.install_sigint_handler()
    run.db.build_file_owners()
    available = run.db.installed()
    done = False
    err = 0
    restrict = run.conf.default_dest if run.conf.restrict_to_default_dest else None
    for pattern in patterns:
        for pkg in available:
            if not _matches(run, pattern, pkg.name):
                continue
            target = run.db.installed_by_name(pkg.name, dest=restrict)
            if target is None:
                run.msgs.error("opkg_remove_cmd", f"Package {pkg.name} is not installed.\n")
                continue
            if pkg.state_status == "not-installed":
                run.msgs.error("opkg_remove_cmd", f"Package {pkg.name} not installed.\n")
                continue
            if remove_pkg(run, target):
                err = -1
            else:
                done = True
    if not done:
        run.msgs.notice("No packages removed.\n")
    run.write_status_if_changed()
    return err


def _matches(run: Run, pattern: str, name: str) -> bool:
    if run.flag("nocase"):
        return fnmatch.fnmatch(name.lower(), pattern.lower())
    return fnmatch.fnmatchcase(name, pattern)


def remove_pkg(run: Run, pkg: Pkg, from_upgrade: bool = False) -> int:
    """opkg_remove_pkg()."""
    if pkg.essential and not from_upgrade and not _essential_allowed(run, pkg):
        return -1
    if not run.flag("force_depends") and "replace" not in pkg.state_flags:
        dependents = run.db.dependents(pkg)
        if dependents:
            if not run.flag("force_removal_of_dependent_packages"):
                _dependents_warning(run, pkg, dependents)
                return -1
            for dependent in dependents:
                if remove_pkg(run, dependent):
                    return -1
    if not from_upgrade:
        run.msgs.notice(f"Removing package {pkg.name} from {pkg.dest.name if pkg.dest else 'root'}...\n")
    pkg.state_want = "deinstall"
    run.state_changed = True
    faults.hang_if("remove", pkg.name)
    if scripts.run_script(run, pkg, "prerm", "remove") and not run.flag("force_remove"):
        run.msgs.error("opkg_remove_pkg", f'not removing package "{pkg.name}", prerm script failed\n')
        run.msgs.notice("You can force removal of packages with failed prerm scripts with the option: \n"
                        "\t--force-remove\n")
        return -1
    remove_data_files_and_list(run, pkg)
    err = scripts.run_script(run, pkg, "postrm", "remove")
    remove_maintainer_scripts(run, pkg)
    pkg.state_status = "not-installed"
    if run.flag("autoremove") and _remove_autoinstalled(run, pkg):
        err = -1
    return err


def _essential_allowed(run: Run, pkg: Pkg) -> bool:
    if run.flag("force_removal_of_essential_packages"):
        run.msgs.notice(f"Removing essential package {pkg.name} under your coercion.\n"
                        "\tIf your system breaks, you get to keep both pieces\n")
        return True
    run.msgs.notice(f"Refusing to remove essential package {pkg.name}.\n"
                    "\tRemoving an essential package may lead to an unusable system, but if\n"
                    "\tyou enjoy that kind of pain, you can force opkg to proceed against\n"
                    "\tits will with the option: --force-removal-of-essential-packages\n")
    return False


def _dependents_warning(run: Run, pkg: Pkg, dependents: list[Pkg]) -> None:
    """print_dependents_warning(): one collected error per line."""
    func = "print_dependents_warning"
    run.msgs.error(func, f"Package {pkg.name} is depended upon by packages:\n")
    for dependent in dependents:
        run.msgs.error(func, f"\t{dependent.name}\n")
    run.msgs.error(func, f"These might cease to work if package {pkg.name} is removed.\n\n")
    run.msgs.error(func, "Force removal of this package with --force-depends.\n")
    run.msgs.error(func, "Force removal of this package and its dependents\n")
    run.msgs.error(func, "with --force-removal-of-dependent-packages.\n")


def _remove_autoinstalled(run: Run, pkg: Pkg) -> int:
    """remove_autoinstalled(): drop auto-installed deps nothing needs any more.

    Like opkg, a dependency possibility that is not installed at all ends the
    scan with an error (opkg assumes a circular dependency removed it)."""
    err = 0
    for compound in pkg.depends:
        for dep in compound:
            other = run.db.installed_by_name(dep.name)
            if other is None:
                return -1
            if not other.auto_installed:
                continue
            if not run.db.dependents(other):
                run.msgs.notice(f"{other.name} was autoinstalled and is now orphaned, removing.\n")
                if remove_pkg(run, other):
                    err = -1
            else:
                run.msgs.info("remove_autoinstalled", f"{other.name} was autoinstalled and is still required "
                                                      f"by {len(run.db.dependents(other))} installed packages.\n")
    return err


def remove_data_files_and_list(run: Run, pkg: Pkg) -> None:
    """Delete the package's files (keeping modified conffiles) and its .list."""
    conffiles = {str(name): value for name, value in pkg.conffiles}
    for path in run.db.installed_files(pkg):
        key = run.db.strip_root(path)
        if run.db.file_owner.get(key, pkg) is not pkg:
            continue  # claimed by another package
        if os.path.isdir(path) and not os.path.islink(path):
            continue
        if key in conffiles and conffile_modified(run.db, key, conffiles[key]):
            run.msgs.notice(f"Not deleting modified conffile {path}.\n")
            continue
        if run.noaction:
            run.msgs.info("remove_data_files_and_list", f"Not deleting {path}. (noaction)\n")
        else:
            run.msgs.info("remove_data_files_and_list", f"Deleting {path}.\n")
            try:
                os.unlink(path)
            except OSError:
                pass
        run.db.file_owner.pop(key, None)
    if not run.noaction and pkg.dest is not None:
        try:
            os.unlink(f"{pkg.dest.info_dir}/{pkg.name}.list")
        except OSError:
            pass


def remove_maintainer_scripts(run: Run, pkg: Pkg) -> None:
    """Delete ``info/NAME.*`` (opkg's glob, which also catches NAME.x.*)."""
    if run.noaction or pkg.dest is None:
        return
    for path in glob.glob(f"{glob.escape(pkg.dest.info_dir)}/{glob.escape(pkg.name)}.*"):
        run.msgs.info("remove_maintainer_scripts", f"Deleting {path}.\n")
        try:
            os.unlink(path)
        except OSError:
            pass
