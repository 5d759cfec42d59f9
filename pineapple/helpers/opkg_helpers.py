"""opkg for module backends, as Hak5's ``opkg_helpers``:

    from pineapple.helpers.opkg_helpers import OpkgJob
    import pineapple.helpers.opkg_helpers as opkg

    opkg.check_if_installed("tcpdump")                       # True / False
    job_id = job_manager.execute_job(OpkgJob("tcpdump", True), callbacks=[done])

Everything goes through pineapple-jobd when it runs, and runs opkg in this
process when it does not, with the same answers (see
:mod:`pineapple.helpers.opkg_bridge`). What a module gets over Hak5's:

- opkg's own error text instead of ``Unable to install package.``, and a
  stable ``job.error_code`` (``unknown_package``, ``download_failed``,
  ``insufficient_space``, ``lock_busy``, ...);
- a failed install leaves nothing half-installed (rolled back);
- a list installs in one opkg run, all or nothing; the package lists are
  refreshed only when missing or stale (or opkg says they are), not
  before every install;
- stopping an ``OpkgJob`` stops that job's opkg, never every opkg on the
  device (Hak5's ran ``killall -9 opkg``);
- no internet probe to downloads.hak5.org before installing: opkg's own
  download error says what failed (local and LAN feeds work offline).
"""
from __future__ import annotations

import logging
from typing import List, Union

from ..errors import JobError
from ..jobs.job import Job
from ..opkg.names import validate_package_name, validate_package_names
from .opkg_bridge import OpkgOperation, Outcome, installed_versions

__all__ = ["OpkgJob", "check_if_installed", "install_dependency", "uninstall_dependency", "update_repository"]

Packages = Union[str, List[str]]


def update_repository(logger: logging.Logger | None = None) -> tuple[bool, str]:
    """Refresh the package lists: ``(True, 'Success')`` or ``(False, why)``."""
    outcome = OpkgOperation("update", logger=logger).run()
    return (True, "Success") if outcome.ok else (False, f"Opkg update failed: {outcome.error}")


def check_if_installed(package: str, logger: logging.Logger | None = None) -> bool:
    """True when ``package`` is installed (read from opkg's status: no opkg run).
    An invalid package name raises ValueError."""
    name = _valid_name(package)
    return installed_versions([name]).get(name) is not None


def install_dependency(package: str, logger: logging.Logger | None = None,
                       skip_repo_update: bool = False) -> tuple[bool, str]:
    """Install ``package`` now (blocking): ``(True, 'Package installed
    successfully')``, ``(True, 'Package is already installed')`` or
    ``(False, 'Unable to install package: <opkg's words>')``. With
    ``skip_repo_update`` the package lists are used as they are."""
    name = _valid_name(package)
    outcome = _install([name], skip_repo_update, logger)
    if not outcome.ok:
        return False, f"Unable to install package: {outcome.error}"
    if _already(outcome.result, "already_present", [name]):
        return True, "Package is already installed"
    return True, "Package installed successfully"


def uninstall_dependency(package: str, logger: logging.Logger | None = None) -> tuple[bool, str]:
    """Remove ``package`` now (blocking), with the dependencies only it
    needed: ``(True, 'Package uninstalled successfully')``, ``(True,
    'Package is not installed')`` or ``(False, 'Unable to uninstall package: ...')``."""
    name = _valid_name(package)
    outcome = OpkgOperation("uninstall", [name], logger).run()
    if not outcome.ok:
        return False, f"Unable to uninstall package: {outcome.error}"
    if _already(outcome.result, "not_installed", [name]):
        return True, "Package is not installed"
    return True, "Package uninstalled successfully"


class OpkgJob(Job[bool]):
    """Install (``install`` true) or remove one package or a list, as a job
    of a module's :class:`~pineapple.jobs.JobManager`. ``result`` is True
    when every package was installed (removed); otherwise False, with
    ``error`` saying why in opkg's words and ``error_code`` a stable code.

    Runs in the manager's ``opkg`` lane: never behind the module's long
    jobs, one OpkgJob at a time. Its ``progress`` follows opkg's (steps,
    "waiting for opkg's lock ...") and its log gets opkg's lines. Stopping it (``stop_job``) cancels its
    own opkg work; a module shutting down leaves a running install to
    finish (in pineapple-jobd, or as the opkg process it started)."""

    job_type = "opkg"
    resource = "opkg"

    def __init__(self, package: Packages, install: bool) -> None:
        super().__init__()
        self.package = package
        self.install = install
        self._operation: OpkgOperation | None = None

    def params(self) -> dict:
        return {"package": self.package, "install": bool(self.install)}

    def do_work(self, logger: logging.Logger) -> bool:
        packages = _package_list(self.package)
        kind = "install" if self.install else "uninstall"
        self._operation = OpkgOperation(kind, packages, logger, self.set_progress,
                                        **({"update": "auto"} if self.install else {}))
        if self.stop_requested:
            self._operation.stop()
        outcome = self._operation.run()
        if outcome.ok:
            return True
        verb = "install" if self.install else "uninstall"
        self.error = f"Unable to {verb} {', '.join(packages)}: {outcome.error}"
        self.error_code = outcome.code
        return False

    def stop(self) -> None:
        if self.stop_reason == "shutdown":
            return  # the module is exiting: let the install finish rather than kill it half-way
        if self._operation is not None:
            self._operation.stop()


# ------------------------------------------------------------------ internals
def _install(packages: list[str], skip_repo_update: bool, logger: logging.Logger | None) -> Outcome:
    return OpkgOperation("install", packages, logger, update="never" if skip_repo_update else "auto").run()


def _already(result: object, key: str, packages: list[str]) -> bool:
    return isinstance(result, dict) and sorted(result.get(key) or ()) == sorted(packages)


def _valid_name(package: object) -> str:
    try:
        return validate_package_name(package)  # type: ignore[arg-type]
    except JobError as exc:
        raise ValueError(str(exc)) from None


def _package_list(package: object) -> list[str]:
    """A name or a list of names, validated (TypeError for anything else, as
    Hak5's; an invalid name fails the job with ``invalid_package_name``)."""
    if isinstance(package, str):
        package = [package]
    elif not isinstance(package, (list, tuple)):
        raise TypeError(f"OpkgJob takes a package name or a list of names, not {type(package).__name__}")
    return validate_package_names(list(package))
