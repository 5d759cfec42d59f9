"""Maintainer scripts (pkg_run_script() in libopkg/pkg.c).

Under an offline root opkg skips them (an INFO line, shown only with -V2)
unless ``--force-postinstall``; then they run on the host through
``/bin/sh -c "SCRIPT ARGS"`` with ``PKG_ROOT`` (the dest's root dir) and
``PKG_UPGRADE`` (0/1) set. The stand-in runs them with the offline root as
working directory (opkg keeps its own cwd) so a stray relative path cannot
land in the caller's directory.

The control field ``X-Standin-Postinst-Exit: N`` makes the postinst "return"
N without running anything, offline root or not.
"""
from __future__ import annotations

import os
import subprocess
import sys

from . import faults
from .pkgdb import Pkg
from .runtime import Run


def run_script(run: Run, pkg: Pkg, script: str, args: str) -> int:
    """Run (or skip) one maintainer script; returns its status, -1 on a signal."""
    if run.noaction:
        return 0
    forced = faults.postinst_exit(pkg.fields) if script == "postinst" else None
    if forced is not None:
        return _report(run, pkg, script, forced)
    if run.conf.offline_root and not run.flag("force_postinstall"):
        run.msgs.info("pkg_run_script", f"Offline root mode: not running {pkg.name}.{script}.\n")
        return 0
    path = _script_path(run, pkg, script)
    if path is None:
        return -1
    run.msgs.info("pkg_run_script", f"Running script {path}.\n")
    if not os.path.exists(path):
        return 0
    return _report(run, pkg, script, _execute(run, pkg, path, args))


def _script_path(run: Run, pkg: Pkg, script: str) -> str | None:
    if pkg.is_installed:
        if pkg.dest is None:
            run.msgs.error("pkg_run_script", f"Internal error: {pkg.name} has a NULL dest.\n")
            return None
        return f"{pkg.dest.info_dir}/{pkg.name}.{script}"
    if pkg.tmp_unpack_dir is None:
        run.msgs.error("pkg_run_script", f"Internal error: {pkg.name} has a NULL tmp_unpack_dir.\n")
        return None
    return f"{pkg.tmp_unpack_dir}/{script}"


def _execute(run: Run, pkg: Pkg, path: str, args: str) -> int:
    dest = pkg.dest or run.conf.default_dest
    env = dict(os.environ)
    env["PKG_ROOT"] = dest.root_dir if dest else "/"
    env["PKG_UPGRADE"] = "1" if pkg.is_upgrade else "0"
    cwd = run.conf.offline_root or None
    status = subprocess.call(["/bin/sh", "-c", f"{path} {args}"], env=env, cwd=cwd,
                             stdout=sys.stdout.fileno(), stderr=sys.stderr.fileno())
    if status < 0:
        run.msgs.error("xsystem", f"/bin/sh: Child killed by signal {-status}.\n")
        return -1
    return status


def _report(run: Run, pkg: Pkg, script: str, status: int) -> int:
    if status:
        run.msgs.error("pkg_run_script", f'package "{pkg.name}" {script} script returned status {status}.\n')
    return status
