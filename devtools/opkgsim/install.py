"""``opkg install`` and the configure step (libopkg/opkg_install.c,
opkg_cmd.c: opkg_install_cmd, opkg_configure_packages).

Per requested name: pick the best candidate (dropping candidates whose
dependencies cannot be resolved), print ``Installing NAME (VERSION) to
DEST...``, check free space, download and verify the file, unpack its control
files, install missing dependencies (recursively, same dest), back up
conffiles, check file clashes, unpack data, write ``info/NAME.*`` and mark the
package unpacked. After all names: configure every unpacked package in
dependency order (``Configuring NAME.``), then rewrite the status files.
"""
from __future__ import annotations

import os
import shutil
import signal
import time

from . import archive, faults, fetch, remove, scripts
from .control import compare_versions
from .pkgdb import ULONG_MAX, Pkg, conffile_modified, file_checksum
from .runtime import Run, make_temp_dir

BACKUP_SUFFIX = "-opkg.backup"


def install_cmd(run: Run, names: list[str]) -> int:
    """opkg_install_cmd(): returns 0 or -1."""
    run.install_sigint_handler()
    run.db.load_feeds()
    run.db.load_status()
    if run.flag("force_reinstall"):
        _remove_for_reinstall(run, names)
    run.db.build_file_owners()
    err = 0
    for name in names:
        if install_by_name(run, name):
            run.msgs.error("opkg_install_cmd", f"Cannot install package {name}.\n")
            err = -1
    if configure_packages(run):
        err = -1
    run.write_status_if_changed()
    return err


def _remove_for_reinstall(run: Run, names: list[str]) -> None:
    """--force-reinstall: opkg removes the packages first, with force_depends."""
    saved = run.conf.opts.force_depends
    run.conf.opts.force_depends = True
    remove.remove_cmd(run, names)
    run.conf.opts.force_depends = saved
    run.conf.opts.force_reinstall = False


def install_by_name(run: Run, name: str) -> int:
    """opkg_install_by_name()."""
    db = run.db
    old = db.installed_by_name(name)
    new = _best_installable(run, name)
    if new is None:
        run.msgs.notice(f"Unknown package '{name}'.\n")
        return -1
    new.state_flags.add("user")
    if old is not None:
        cmp = compare_versions(old.version, new.version)
        if run.flag("force_downgrade") and cmp > 0:
            cmp = -1
        if cmp == 0:
            run.msgs.notice(f"Package {old.name} ({old.version}) installed in {_dest_name(old)} is up to date.\n")
            return 0
        if cmp > 0:
            run.msgs.notice(f"Not downgrading package {old.name} on {_dest_name(old)} "
                            f"from {old.version} to {new.version}.\n")
            return 0
        new.dest = old.dest
        old.state_want = "deinstall"
    return install_pkg(run, new)


def _best_installable(run: Run, name: str) -> Pkg | None:
    """pkg_hash_fetch_best_installation_candidate_by_name() with the
    unresolved-dependency check of opkg-lede."""
    providers = run.db.providers(name)
    usable = [pkg for pkg in providers if not run.db.report_unresolved(pkg)]
    if providers and not usable:
        run.msgs.error("pkg_hash_fetch_best_installation_candidate",
                       f"Packages for {name} found, but incompatible with the architectures configured\n")
        return None
    named = [pkg for pkg in usable if pkg.name == name]
    if not named and len({pkg.name for pkg in usable}) == 1:
        named = usable
    if not named:
        return None
    best = named[0]
    for pkg in named[1:]:
        cmp = compare_versions(pkg.version, best.version)
        if cmp > 0 or (cmp == 0 and run.conf.arch_priority(pkg.arch) >= run.conf.arch_priority(best.arch)):
            best = pkg
    return best


def _dest_name(pkg: Pkg) -> str:
    return pkg.dest.name if pkg.dest else "root"


def install_pkg(run: Run, pkg: Pkg, from_upgrade: bool = False) -> int:
    """opkg_install_pkg(): unpack one package (and its missing dependencies)."""
    if not run.conf.arch_priority(pkg.arch):
        run.msgs.error("opkg_install_pkg",
                       f"INTERNAL ERROR: architecture {pkg.arch} for pkg {pkg.name} is unsupported.\n")
        return -1
    if pkg.state_status == "installed" and not run.flag("nodeps"):
        if satisfy_dependencies_for(run, pkg):
            return -1
        run.msgs.notice(f"Package {pkg.name} is already installed on {_dest_name(pkg)}.\n")
        return 0
    if pkg.dest is None:
        pkg.dest = run.conf.default_dest
    old = run.db.installed_by_name(pkg.name)
    if old is pkg:
        old = None  # an unpacked package being completed, not an upgrade
    if _announce(run, pkg, old, from_upgrade):
        return -1
    pkg.state_want = "install"
    if old is not None:
        old.state_want = "deinstall"
    if _conflicts(run, pkg):
        return -1
    if pkg.state_status == "installed":
        return 0
    if not _space_ok(run, pkg):
        return -1
    if not _fetch(run, pkg):
        return -1
    if pkg.tmp_unpack_dir is None and not _unpack_control(run, pkg):
        return -1
    _claim_files(run, pkg, old)
    if not run.flag("nodeps"):
        if satisfy_dependencies_for(run, pkg):
            return -1
        if pkg.state_status == "unpacked":
            return 0  # a circular dependency installed it already
    return _unpack(run, pkg, old)


def _announce(run: Run, pkg: Pkg, old: Pkg | None, from_upgrade: bool) -> int:
    """opkg_install_check_downgrade(): the Installing/Upgrading line."""
    if old is None:
        verb = "Upgrading" if from_upgrade else "Installing"
        run.msgs.notice(f"{verb} {pkg.name} ({pkg.version}) to {_dest_name(pkg)}...\n")
        return 0
    cmp = compare_versions(old.version, pkg.version)
    verb = "Upgrading "
    if run.flag("force_downgrade") and cmp > 0:
        cmp, verb = -1, "Downgrading "
    if cmp > 0:
        run.msgs.notice(f"Not downgrading package {old.name} on {_dest_name(old)} "
                        f"from {old.version} to {pkg.version}.\n")
        return 1
    if cmp == 0:
        run.msgs.notice(f"{pkg.name} ({pkg.version}) already install on {_dest_name(old)}.\n")
        return 1
    run.msgs.notice(f"{verb}{pkg.name} on {_dest_name(old)} from {old.version} to {pkg.version}...\n")
    pkg.dest = old.dest
    return 0


def _conflicts(run: Run, pkg: Pkg) -> bool:
    """check_conflicts_for(): installed packages named in Conflicts."""
    if run.flag("force_depends"):
        return False
    from .control import parse_depends  # local: only needed here

    found = []
    for compound in parse_depends(pkg.fields.get("Conflicts")):
        for dep in compound:
            for other in run.db.by_name.get(dep.name, []):
                if (other.is_installed or other.state_want == "install") and dep.satisfied_by(other.version) \
                        and other not in found and other is not pkg:
                    found.append(other)
    if not found:
        return False
    run.msgs.error("check_conflicts_for", f"The following packages conflict with {pkg.name}:\n")
    for other in found:
        run.msgs.error("check_conflicts_for", f"\t{other.name}")
    run.msgs.raw_error("\n")
    return True


def _space_ok(run: Run, pkg: Pkg) -> bool:
    """verify_pkg_installable(): the free-space pre-check."""
    size = pkg.installed_size
    if run.flag("force_space") or size == 0:
        return True
    assert pkg.dest is not None
    overlay = run.conf.overlay_root
    if pkg.dest.name == "root" and overlay and os.path.isdir(overlay):
        root_dir = overlay  # used as given, not under the offline root, as opkg does
    else:
        root_dir = pkg.dest.root_dir
    available = _available_kb(run, root_dir)
    needed = ((size + 1023) & ULONG_MAX) // 1024  # unsigned long arithmetic, as in C
    if needed >= available:
        run.msgs.error("verify_pkg_installable", f"Only have {available}kb available on filesystem "
                                                 f"{root_dir}, pkg {pkg.name} needs {needed}\n")
        return False
    return True


def _available_kb(run: Run, path: str) -> int:
    override = faults.free_kb_override()
    if override is not None:
        return override
    try:
        st = os.statvfs(path)
    except OSError as exc:
        run.msgs.perror("get_available_kbytes", f"Failed to statvfs for {path}", exc.errno or 0)
        return 0
    return st.f_bavail * st.f_frsize // 1024


def _fetch(run: Run, pkg: Pkg) -> bool:
    """Download (unless already local) and verify the package file."""
    if pkg.local_filename is None:
        if not fetch.download_pkg(run, pkg):
            run.msgs.error("opkg_install_pkg",
                           f"Failed to download {pkg.name}. Perhaps you need to run 'opkg update'?\n")
            return False
    assert pkg.local_filename is not None
    if not fetch.verify_integrity(run, pkg, pkg.local_filename):
        if not run.flag("force_checksum"):
            run.msgs.error("opkg_install_pkg", f"Checksum or size mismatch for package {pkg.name}. "
                                               "Either the opkg or the package index are corrupt. "
                                               "Try 'opkg update'.\n")
            return False
        run.msgs.notice(f"Ignored {pkg.name} checksum or size mismatch.\n")
    return True


def _unpack_control(run: Run, pkg: Pkg) -> bool:
    """unpack_pkg_control_files(): control files to a temp dir, conffiles read."""
    assert pkg.local_filename is not None and pkg.dest is not None
    unpack_dir = make_temp_dir(f"{run.tmp_dir}/{pkg.name}-")
    try:
        files = archive.extract_control_files(pkg.local_filename, unpack_dir)
    except archive.ArchiveError:
        run.msgs.error("opkg_install_pkg", f"Failed to unpack control files from {pkg.local_filename}.\n")
        return False
    pkg.tmp_unpack_dir = unpack_dir
    if not pkg.conffiles and "conffiles" in files:
        prefix = pkg.dest.host_prefix
        names = [line.strip() for line in files["conffiles"].decode(errors="replace").splitlines()]
        pkg.conffiles = [[prefix + name.lstrip("/"), None] for name in names if name]
    return True


def _package_paths(run: Run, pkg: Pkg) -> list[str]:
    """Host paths (under the dest) of the package's non-directory files."""
    assert pkg.local_filename is not None and pkg.dest is not None
    try:
        return [pkg.dest.root_dir + rel for rel in archive.data_paths(pkg.local_filename)]
    except archive.ArchiveError:
        return []


def _claim_files(run: Run, pkg: Pkg, old: Pkg | None) -> None:
    """update_file_ownership(): unowned files and old_pkg's files become pkg's."""
    owners = run.db.file_owner
    for path in _package_paths(run, pkg):
        key = run.db.strip_root(path)
        owner = owners.get(key)
        if owner is None or owner is old or owner is pkg:
            owners[key] = pkg


def satisfy_dependencies_for(run: Run, pkg: Pkg) -> int:
    """satisfy_dependencies_for(): install what ``pkg`` needs, deepest first."""
    needed: list[Pkg] = []
    lost: list[str] = []
    _collect_unsatisfied(run, pkg, needed, lost)
    if lost:
        run.msgs.error("satisfy_dependencies_for", f"Cannot satisfy the following dependencies for {pkg.name}:\n")
        for text in lost:
            run.msgs.raw_error(f"\t{text}")
        run.msgs.raw_error("\n")
        if not run.flag("force_depends"):
            return -1
    for dep in needed:
        if dep.dest is None:
            dep.dest = pkg.dest  # dependencies go where the package goes
        dep.state_want = "install"
    for dep in needed:
        if not dep.is_installed:
            err = install_pkg(run, dep)
            dep.auto_installed = True
            if err:
                return err
    return 0


def _collect_unsatisfied(run: Run, pkg: Pkg, needed: list[Pkg], lost: list[str]) -> None:
    """pkg_hash_fetch_unsatisfied_dependencies() (each name checked once a run)."""
    if pkg.name in run.deps_checked:
        return
    run.deps_checked.add(pkg.name)
    for compound in pkg.depends:
        if run.db.installed_satisfier(compound):
            continue
        satisfier = run.db.available_satisfier(compound)
        if satisfier is None:
            lost.append(" | ".join(str(dep) for dep in compound))
        elif satisfier is not pkg and satisfier not in needed:
            _collect_unsatisfied(run, satisfier, needed, lost)
            needed.append(satisfier)


def _unpack(run: Run, pkg: Pkg, old: Pkg | None) -> int:
    """The second half of opkg_install_pkg(): scripts, conffiles, data,
    with SIGINT blocked as opkg blocks it ("to prevent inconsistency
    between opkg database and filesystem"): an interrupt arriving meanwhile
    is handled once the package is recorded ``unpacked``."""
    faults.hang_if("unpack", pkg.name)  # before SIGINT is blocked: a hang here stays interruptible
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return _unpack_blocked(run, pkg, old)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _unpack_blocked(run: Run, pkg: Pkg, old: Pkg | None) -> int:
    assert pkg.dest is not None and pkg.local_filename is not None
    run.state_changed = True
    if old is not None:
        old.is_upgrade = pkg.is_upgrade = True
        if scripts.run_script(run, old, "prerm", f"upgrade {pkg.version}"):
            run.msgs.error("prerm_upgrade_old_pkg", f'prerm script for package "{old.name}" failed\n')
            return -1
    preinst_args = f"upgrade {old.version}" if old is not None else "install"
    if scripts.run_script(run, pkg, "preinst", preinst_args):
        run.msgs.error("preinst_configure", f"Aborting installation of {pkg.name}.\n")
        return -1
    _backup_conffiles(run, pkg, old)
    if _file_clashes(run, pkg, old):
        _drop_backups(run, pkg)
        return -1
    if old is not None and scripts.run_script(run, old, "postrm", f"upgrade {pkg.version}"):
        run.msgs.error("postrm_upgrade_old_pkg", f'postrm script for package "{old.name}" failed\n')
        return -1
    if run.noaction:
        return 0
    if old is not None:
        _replace_old(run, pkg, old)
    faults.delay("OPKG_STANDIN_UNPACK_DELAY")
    try:
        archive.extract_control_files(pkg.local_filename, pkg.dest.info_dir, prefix=f"{pkg.name}.")
        written = archive.extract_data(pkg.local_filename, pkg.dest.root_dir)
    except (archive.ArchiveError, OSError):
        run.msgs.error("opkg_install_pkg", f"Failed to extract data files for {pkg.name}. "
                                           "Package debris may remain!\n")
        return -1
    _write_file_list(run, pkg, written)
    _resolve_conffiles(run, pkg)
    pkg.state_status = "unpacked"
    pkg.state_flags.discard("prefer")
    if old is not None:
        old.state_status = "not-installed"
    pkg.installed_time = int(time.time())
    return 0


def _replace_old(run: Run, pkg: Pkg, old: Pkg) -> None:
    """Upgrade: drop the old version's obsolete files, file list and scripts."""
    new_files = {run.db.strip_root(p) for p in _package_paths(run, pkg)}
    for path in run.db.installed_files(old):
        key = run.db.strip_root(path)
        if key not in new_files and not os.path.isdir(path) and run.db.file_owner.get(key) is old:
            run.msgs.notice(f"Removing obsolete file {path}.\n")
            _unlink(path)
    remove.remove_data_files_and_list(run, old)
    remove.remove_maintainer_scripts(run, old)


def _write_file_list(run: Run, pkg: Pkg, written: list[str]) -> None:
    """pkg_write_filelist(): the files this package owns, offline root stripped."""
    assert pkg.dest is not None
    lines = []
    for rel in written:
        key = run.db.strip_root(pkg.dest.root_dir + rel)
        if run.db.file_owner.get(key, pkg) is pkg:
            run.db.file_owner[key] = pkg
            lines.append(key)
    with open(f"{pkg.dest.info_dir}/{pkg.name}.list", "w", encoding="utf-8") as handle:
        handle.write("".join(f"{line}\n" for line in lines))


def _backup_conffiles(run: Run, pkg: Pkg, old: Pkg | None) -> None:
    """backup_modified_conffiles()."""
    if run.noaction:
        return
    old_names = {name for name, _ in (old.conffiles if old else [])}
    if old is not None:
        for name, value in old.conffiles:
            path = run.db.root_path(str(name))
            if os.path.exists(path) and conffile_modified(run.db, str(name), value):
                shutil.copy2(path, path + BACKUP_SUFFIX)
    for name, _ in pkg.conffiles:
        if name in old_names:
            continue
        path = run.db.root_path(str(name))
        if os.path.exists(path) and not os.path.exists(path + BACKUP_SUFFIX):
            shutil.copy2(path, path + BACKUP_SUFFIX)


def _drop_backups(run: Run, pkg: Pkg) -> None:
    for name, _ in pkg.conffiles:
        _unlink(run.db.root_path(str(name)) + BACKUP_SUFFIX)


def _file_clashes(run: Run, pkg: Pkg, old: Pkg | None) -> int:
    """check_data_file_clashes(): files another package already provides."""
    clashes = 0
    for path in _package_paths(run, pkg):
        if not os.path.lexists(path) or os.path.isdir(path) or os.path.exists(path + BACKUP_SUFFIX):
            continue
        key = run.db.strip_root(path)
        if run.flag("force_overwrite"):
            run.db.file_owner[key] = pkg
            continue
        owner = run.db.file_owner.get(key)
        if owner is None or owner is pkg or owner.name == pkg.name or (old and owner.name == old.name):
            continue
        run.msgs.error("check_data_file_clashes", f"Package {pkg.name} wants to install file {path}\n"
                                                  "\tBut that file is already provided by package ")
        run.msgs.raw_error(f"{owner.name}\n")
        clashes += 1
    return clashes


def _resolve_conffiles(run: Run, pkg: Pkg) -> None:
    """resolve_conffiles(): keep a modified conffile, park the new one at -opkg."""
    for entry in pkg.conffiles:
        name, value = str(entry[0]), entry[1]
        path = run.db.root_path(name)
        if value is None:
            value = entry[1] = file_checksum(path)
        if not os.path.exists(path):
            continue
        backup = path + BACKUP_SUFFIX
        if not os.path.exists(backup):
            continue
        current = file_checksum(backup, like=value)
        if current and value and current != value:
            if run.flag("force_maintainer"):
                run.msgs.notice(f"Conffile {backup} using maintainer's setting.\n")
            else:
                new_conffile = path + "-opkg"
                run.msgs.error("resolve_conffiles", f"Existing conffile {path} is different from the conffile "
                                                    f"in the new package. The new conffile will be placed at "
                                                    f"{new_conffile}.\n")
                os.replace(path, new_conffile)
                os.replace(backup, path)
        _unlink(backup)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# -- configure -------------------------------------------------------------


def configure_cmd(run: Run, words: list[str]) -> int:
    """``opkg configure [PATTERN]``."""
    err = configure_packages(run, words[0] if words else None)
    run.write_status_if_changed()
    return err


def configure_packages(run: Run, pattern: str | None = None) -> int:
    """opkg_configure_packages(): run postinst of every unpacked package,
    dependencies first."""
    import fnmatch

    err = 0
    for pkg in _dependency_order(run):
        if pattern and not fnmatch.fnmatchcase(pkg.name, pattern):
            continue
        if pkg.state_status != "unpacked":
            continue
        run.msgs.notice(f"Configuring {pkg.name}.\n")
        faults.hang_if("configure", pkg.name)
        status = scripts.run_script(run, pkg, "postinst", "configure")
        if status:
            run.msgs.error("opkg_configure", f"{pkg.name}.postinst returned {status}.\n")
            err = -1
            continue
        pkg.state_status = "installed"
        pkg.state_flags.discard("prefer")
        run.state_changed = True
    return err


def _dependency_order(run: Run) -> list[Pkg]:
    """opkg_recurse_pkgs_in_order(): installed/unpacked packages, deps first."""
    ordered: list[Pkg] = []
    visited: set[str] = set()

    def visit(pkg: Pkg) -> None:
        if not pkg.is_installed or pkg.name in visited:
            return
        visited.add(pkg.name)
        for compound in pkg.depends:
            for dep in compound:
                for provider in run.db.providers(dep.name):
                    if provider.is_installed:
                        visit(provider)
                        break
        ordered.append(pkg)

    for pkg in list(run.db.pkgs):
        visit(pkg)
    return ordered
