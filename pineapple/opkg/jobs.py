"""The opkg jobs: install, uninstall and update package lists.

All three run with ``resource = "opkg"`` (one at a time, in submission
order) and stop only their own opkg process on cancel or timeout.

Install (:class:`InstallDependenciesJob`):

1. skip packages already installed (read from opkg's status file: no spawn);
2. run ``opkg update`` only when a feed list is missing or older than
   ``lists_max_age`` (``update="auto"``), always (``"always"``) or never;
3. refuse with ``insufficient_space`` before touching anything when the
   lists' Installed-Size says the packages will not fit;
4. install every missing package in one opkg call; if opkg then hints the
   lists are stale, update once and retry once;
5. verify each package in the status file;
6. on failure with ``atomic=True``, remove what this job newly installed so
   the device is left as it was (``rolled_back`` in the result).

Every opkg run that changes the device is a transaction: before it starts,
the job's intent (operation, packages, destination, which of the packages
it may add were absent) is written to its journal record, and again with
the opkg process's group id and start time as soon as it runs. A restart
after a crash hands each intent left in the journal to
:func:`pineapple.opkg.recovery.recover` (docs/opkg.md, "What happens after a
crash").

"What this job installed" is what its own opkg runs said they installed
(their ``Installing X`` lines) and the status database then lists: never a
package another process (LuCI, cron) installed while this job waited for
opkg's lock. A cancel or timeout stops opkg with SIGINT first, so opkg
writes its database and the rollback sees what it had unpacked.
"""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from .. import errors
from ..errors import JobError
from ..jobs import Job
from ..jobs.registry import RUN_OPTIONS, JobTypeRegistry, Params, Recovery
from .names import validate_package_name, validate_package_names
from .runner import OpkgRun, RunControl, process_start_time
from .status import dependency_closure
from .system import InstallPlan, OpkgSystem

# Imported where they are used, not here: a job whose packages are all
# installed already (the common case) never runs opkg, and the first job
# after start should not pay for loading what only a real run needs
# (output parsing, progress, rollback debris, crash recovery).
if TYPE_CHECKING:
    from .output import OpkgOutcome
    from .progress import StepProgress

UPDATE_CHOICES = ("auto", "always", "never")
_NOTHING: frozenset = frozenset()  # a per-run set between runs


class OpkgJob(Job[dict]):
    """Shared machinery: run opkg with live log and progress, stop cleanly.

    What a run needs (the stop control, the logger, step progress, what
    opkg said it installed or removed) exists only while ``do_work`` runs:
    a queued or finished job is kept as a record (up to
    ``daemon.max_finished`` of them, and ``max_queued``), and holds no more
    than its parameters and answer. Subclasses implement :meth:`_work`."""

    resource = "opkg"
    __slots__ = ("system", "_control", "_logger", "_steps", "_intent_unsaved", "_installing", "_removing")

    def __init__(self, system: OpkgSystem, **options: Any) -> None:
        super().__init__(**options)
        self.system = system
        self._end_run()

    def do_work(self, logger: logging.Logger) -> dict:
        self._begin_run(logger)
        try:
            return self._work()
        finally:
            self._end_run()

    def _work(self) -> dict:
        raise NotImplementedError

    def _begin_run(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._steps = None
        self._intent_unsaved = False  # warned once that the journal did not take an intent
        self._installing = set()  # "Installing X" lines of this job's own runs
        self._removing = set()  # "Removing package X" / "X ... orphaned, removing." lines
        control = self._control = RunControl()
        # A stop asked between the start of the attempt and now found no control to stop.
        if self.stop_requested:
            control.stop(self._stop_reason())

    def _end_run(self) -> None:
        self._control: RunControl | None = None
        self._logger: logging.Logger | None = None
        self._steps: StepProgress | None = None
        self._intent_unsaved = False
        self._installing: set[str] | frozenset = _NOTHING
        self._removing: set[str] | frozenset = _NOTHING

    def stop(self) -> None:
        control = self._control
        if control is not None:  # else not running opkg: _begin_run sees stop_requested
            control.stop(self._stop_reason())

    def _stop_reason(self) -> str:
        return "timeout" if self.stop_reason == "timeout" else "cancelled"

    def _run_control(self) -> RunControl:
        control = self._control
        if control is None:
            raise RuntimeError("an opkg job runs opkg only inside do_work")
        return control

    def _opkg(self, args: list[str], control: RunControl | None = None,
              phase: str | None = None) -> tuple[OpkgRun, OpkgOutcome]:
        """One opkg run; every output line goes to the log and progress.
        With ``phase``, the run changes the device: the job's intent for it
        is journalled before opkg starts and again, with opkg's process
        identity, once it runs."""
        self._log(f"$ opkg {' '.join(args)}")
        on_spawn = tag = None
        if phase is not None:
            # Finds the run should the daemon die before on_spawn wrote it. Not uuid:
            # OpenWrt 22.03+ ships that in python3-uuid, which the package does not need.
            tag = os.urandom(16).hex()
            self._save_intent(phase, {"tag": tag})

            def on_spawn(pid: int, pgid: int) -> None:
                self._save_intent(phase, {"tag": tag, "pid": pid, "pgid": pgid, "start": process_start_time(pid)})

        try:
            run, outcome = self.system.run(args, self._on_line, control or self._run_control(),
                                           self._on_lock_wait, on_spawn, tag)
        except JobError:
            if phase is not None:
                self._stop_left_running()
            raise
        for line in run.stderr.splitlines():
            self._log(line, logging.WARNING if run.rc else logging.INFO)
        if run.lock_waits:
            self._log(f"waited for opkg's lock {run.lock_waits} time(s)")
        return run, outcome

    def _stop_left_running(self) -> None:
        """The run ended without its outcome (the opkg helper died, say):
        its opkg may live on, holding opkg's lock. Stop it as a restart's
        recovery would (only the group journalled as ours)."""
        from . import recovery

        process = (self.intent or {}).get("opkg") or {}
        stopped = recovery.stop_our_opkg(process, search_tag=False)
        if stopped is not None:
            self._log(f"opkg was left running (process group {stopped['pgid']}): stopped it "
                      f"({stopped['signal']})", logging.WARNING)

    def _intent(self, phase: str) -> dict:
        """What a run in ``phase`` may change (see pineapple.opkg.recovery)."""
        return {"op": self.job_type, "phase": phase}

    def _save_intent(self, phase: str, process: dict) -> None:
        if not self.save_intent({**self._intent(phase), "opkg": process}) and not self._intent_unsaved:
            self._intent_unsaved = True
            self._log("the journal is failing: if the daemon dies during this opkg run, "
                      "a restart cannot undo what it leaves half done", logging.WARNING)

    def _on_line(self, line: str) -> None:
        # opkg's own lines go to the job's log; the daemon's log (syslog) only
        # carries them at debug level, so a busy device does not flood it.
        from .output import INSTALLING, REMOVING, parse_progress_line

        self._log(line, logging.DEBUG)
        event = parse_progress_line(line)
        if event is not None and event.package and event.stage in (INSTALLING, REMOVING):
            (self._installing if event.stage == INSTALLING else self._removing).add(event.package)
        if event is not None and self._steps is not None:
            step = self._steps.advance(event)
            if step is not None:
                self.set_progress(*step)

    def _on_lock_wait(self, waited: float) -> None:
        self.set_progress(self.progress.fraction,
                          f"waiting for opkg's lock (another process is using opkg, {waited:.0f}s)")

    def _log(self, line: str, level: int = logging.INFO) -> None:
        if self._logger is not None:
            self._logger.log(level, "%s", line)

    def _stop_code(self) -> str | None:
        """``cancelled`` or ``timeout`` once this job's opkg was stopped, else None."""
        control = self._control
        if control is None or not control.stopped:
            return None
        return errors.TIMEOUT if control.reason == "timeout" else errors.CANCELLED

    def _stop_message(self) -> str:
        return "timed out while running opkg" if self._stop_code() == errors.TIMEOUT \
            else "cancelled while running opkg"

    def _check_stopped(self, result: dict) -> None:
        code = self._stop_code()
        if code is not None:
            raise JobError(self._stop_message(), code, result)

    def _dest_args(self, dest: str) -> list[str]:
        return ["-d", dest] if dest else []


class InstallDependenciesJob(OpkgJob):
    """Install opkg packages (and their dependencies), all or nothing."""

    job_type = "install"
    __slots__ = ("packages", "dest", "update", "atomic", "_updated", "_placeholders", "_may_add", "_absent", "_plan")

    def __init__(self, system: OpkgSystem, packages: list[str], dest: str | None = None,
                 update: str = "auto", atomic: bool = True, **options: Any) -> None:
        super().__init__(system, **options)
        self.packages = validate_package_names(packages)
        self.dest = _valid_dest(dest if dest is not None else system.default_dest)
        if update not in UPDATE_CHOICES:
            raise JobError(f"update must be one of {', '.join(UPDATE_CHOICES)}", errors.INVALID_FIELD)
        self.update, self.atomic = update, atomic

    def _begin_run(self, logger: logging.Logger) -> None:
        super()._begin_run(logger)
        self._updated = False
        self._placeholders = _NOTHING  # "not-installed" stanzas before this job ran opkg (read before the install)
        self._may_add = set()  # what the install runs may add (requested + planned dependencies)
        self._absent = set()  # of those, what was not in the status database before our run
        self._plan = None  # from the feed lists, made in the opkg helper (system.plan_install)

    def _end_run(self) -> None:
        super()._end_run()
        self._updated = False
        self._placeholders: set[str] | frozenset = _NOTHING
        self._may_add: set[str] | frozenset = _NOTHING
        self._absent: set[str] | frozenset = _NOTHING
        self._plan: InstallPlan | None = None

    def _intent(self, phase: str) -> dict:
        if phase == "install":
            installed = self.system.installed()  # read again at each spawn: after a lock wait, too
            self._absent.update(name for name in self._may_add if name not in installed)
        return {**super()._intent(phase), "packages": list(self.packages), "dest": self.dest,
                "atomic": self.atomic, "absent_before": sorted(self._absent)}

    def params(self) -> dict:
        return {"packages": self.packages, "dest": self.dest, "update": self.update, "atomic": self.atomic}

    def dedup_key(self) -> tuple:
        return ("install", self.dest, tuple(sorted(self.packages)))

    def _work(self) -> dict:
        before = self.system.installed()
        present = [p for p in self.packages if _fully_installed(before, p)]
        missing = [p for p in self.packages if p not in present]
        result: dict = {"installed": [], "dependencies": [], "already_present": present,
                        "failed": {}, "rolled_back": [], "updated_lists": False}
        if not missing:
            self._log(f"already installed: {', '.join(present)}")
            return result
        from .debris import placeholders
        from .output import OpkgOutcome

        self._prepare(missing, result)
        self._placeholders = placeholders(self.system.conf())
        try:
            outcome = self._install(missing, before, result)
        except JobError as exc:
            # Stopped (or failed) inside the stale-lists update/retry: the first
            # install run may already have installed packages, so conclude
            # (and roll back if atomic) instead of leaving them behind.
            outcome = OpkgOutcome(ok=False, rc=-1, code=exc.code, message=str(exc))
        return self._conclude(missing, before, outcome, result)

    def _prepare(self, missing: list[str], result: dict) -> None:
        self.set_progress(0.0, f"installing {', '.join(missing)}")
        if self.update == "always" or (self.update == "auto" and self.system.lists_are_stale()):
            self._update_lists(result)
        self._check_space(missing)

    def _update_lists(self, result: dict) -> None:
        self.set_progress(self.progress.fraction, "updating package lists")
        steps, self._steps = self._steps, None  # a feed list download is no install step
        try:
            run, outcome = self._opkg(["update"], phase="update")
        finally:
            self._steps = steps
        self._check_stopped(result)
        self._updated = result["updated_lists"] = True
        if run.rc != 0:
            self._log(f"opkg update: {run.rc} feed(s) failed; trying with the lists we have", logging.WARNING)

    def _check_space(self, missing: list[str]) -> None:
        self._plan = self.system.plan_install(missing)  # also what _install adds: the lists are parsed once
        shortfall = self.system.space_shortfall(missing, self.dest, self._plan)
        if shortfall is not None:
            needed, free, path = shortfall
            raise JobError(f"not enough space: {', '.join(missing)} need {needed} KiB, "
                           f"only {free} KiB free on {path}; nothing was changed", errors.INSUFFICIENT_SPACE,
                           {"installed": [], "failed": {p: errors.INSUFFICIENT_SPACE for p in missing}})

    def _install(self, missing: list[str], before: dict, result: dict) -> OpkgOutcome:
        from .progress import StepProgress

        plan = (self._plan or self.system.plan_install(missing, before)).packages
        self._may_add.update(missing, plan or ())
        self._steps = StepProgress(len(plan) if plan else len(missing), start=self.progress.fraction or 0.0)
        force = ["--force-reinstall"] if any(p in before for p in missing) else []
        args = [*self._dest_args(self.dest), *force, "install", *missing]
        run, outcome = self._opkg(args, phase="install")
        if not outcome.ok and outcome.suggests_update and not self._updated and self.update != "never" \
                and not self._run_control().stopped:
            self._log("opkg suggests the package lists are stale: updating them and retrying once")
            self._update_lists(result)
            self._may_add.update(self.system.plan_install(missing).packages or ())
            run, outcome = self._opkg(args, phase="install")
        return outcome

    def _conclude(self, missing: list[str], before: dict, outcome: OpkgOutcome, result: dict) -> dict:
        after = self.system.installed()
        # Ours: what our runs installed, not whatever appeared since `before`
        # (another process may have installed packages while we waited for the lock).
        new = [name for name in after if name not in before and name in self._installing]
        result["installed"] = [p for p in missing if _fully_installed(after, p)]
        result["dependencies"] = sorted(p for p in new if p not in missing and _fully_installed(after, p))
        failed = {p: outcome.failures.get(p) or outcome.code or errors.VERIFY_FAILED
                  for p in missing if not _fully_installed(after, p)}
        if not failed and self._stop_code() is None:
            from .progress import CEILING

            self.set_progress(CEILING, "installed " + ", ".join(missing))
            return result
        result["failed"] = failed
        raise self._failure(missing, new, after, outcome, result)

    def _failure(self, missing: list[str], new: list[str], after: dict, outcome: OpkgOutcome,
                 result: dict) -> JobError:
        """Roll back if atomic, then the error to raise (cancel/timeout win)."""
        if self.atomic:
            if new:
                result["rolled_back"] = self._roll_back(new, after)
                result["installed"], result["dependencies"] = [], []
            result["rolled_back"] += self._delete_unrecorded(after)
            self._drop_placeholders()
        stop = self._stop_code()
        if stop is not None:
            # Every package this job did not leave installed failed because of the stop.
            result["failed"] = {p: stop for p in missing if p not in result["installed"]}
            message = self._stop_message()
            if result["rolled_back"]:
                message += f"\nRolled back: {', '.join(result['rolled_back'])}"
            return JobError(message, stop, result)
        code = outcome.code or errors.VERIFY_FAILED
        message = outcome.message if not outcome.ok else (
            f"opkg reported success but {', '.join(result['failed'])} is not installed (half-configured?)")
        unknown = [name for name, why in result["failed"].items() if why == errors.UNKNOWN_PACKAGE]
        if unknown:
            # opkg's stderr only says "Cannot install package X."; its stdout line says why.
            names = ", ".join(f"'{name}'" for name in unknown)
            message = f"Unknown package {names}: no configured feed's package list has it.\n{message}"
        if result["rolled_back"]:
            message += f"\nRolled back: {', '.join(result['rolled_back'])}"
        return JobError(message, code, result)

    def _delete_unrecorded(self, after: dict) -> list[str]:
        """What a run that died unrecorded unpacked (no status entry, only
        files and ``info/NAME.*``): deleted, with the directories it made."""
        from .debris import delete_unrecorded, remove_emptied_dirs

        conf = self.system.conf()
        names, files = delete_unrecorded(conf, sorted(self._absent), after)
        if names:
            remove_emptied_dirs(conf, files)
            self._log(f"deleted what opkg unpacked but never recorded: {', '.join(names)}", logging.WARNING)
        return names

    def _drop_placeholders(self) -> None:
        """The "not-installed" stanzas our interrupted or failed runs left."""
        from .debris import drop_placeholders

        ours = self._installing - self._placeholders
        dropped = drop_placeholders(self.system.conf(), ours) if ours else []
        if dropped:
            self._log(f"removed opkg's not-installed entries for {', '.join(sorted(dropped))}")

    def _roll_back(self, new: list[str], after: dict) -> list[str]:
        """Remove what this job installed (its own run: works after a cancel),
        and the directories that leaves empty (opkg's remove keeps them)."""
        from .debris import listed_files, remove_emptied_dirs

        self.set_progress(self.progress.fraction, "rolling back " + ", ".join(new))
        self._log(f"rolling back: removing {', '.join(new)}")
        conf = self.system.conf()
        files = {name: listed_files(conf, after, [name]) for name in new}
        self._opkg(["remove", "--force-depends", *new], control=RunControl(), phase="rollback")
        still = self.system.installed()
        removed = [p for p in new if p not in still]
        dirs = remove_emptied_dirs(conf, [path for name in removed for path in files[name]])
        if dirs:
            self._log(f"rollback removed {len(dirs)} directories the install had left empty")
        left = [p for p in new if p not in removed]
        self.set_progress(self.progress.fraction, f"rollback left {', '.join(left)} installed" if left
                          else "rolled back " + ", ".join(removed))
        return removed


class UninstallDependenciesJob(OpkgJob):
    """Remove opkg packages (by default with their orphaned dependencies)."""

    job_type = "uninstall"
    __slots__ = ("packages", "autoremove", "force", "_scope")

    def __init__(self, system: OpkgSystem, packages: list[str], autoremove: bool = True,
                 force: bool = False, **options: Any) -> None:
        super().__init__(system, **options)
        self.packages = validate_package_names(packages)
        self.autoremove, self.force = autoremove, force

    def _end_run(self) -> None:
        super()._end_run()
        self._scope: list[str] | tuple = ()  # what this removal may touch (while it runs)

    def _intent(self, phase: str) -> dict:
        return {**super()._intent(phase), "packages": list(self.packages), "scope": self._scope}

    def params(self) -> dict:
        return {"packages": self.packages, "autoremove": self.autoremove, "force": self.force}

    def dedup_key(self) -> tuple:
        return ("uninstall", tuple(sorted(self.packages)))

    def _work(self) -> dict:
        before = self.system.installed()
        present = [p for p in self.packages if p in before]
        absent = [p for p in self.packages if p not in before]
        result: dict = {"removed": [], "autoremoved": [], "not_installed": absent}
        if not present:
            self._log(f"not installed: {', '.join(self.packages)}")
            return result
        from .progress import StepProgress

        self._steps = StepProgress(len(present), steps=1)
        # What this removal may touch: the packages, and with autoremove what they depend on.
        self._scope = sorted(dependency_closure(before, present) if self.autoremove else present)
        flags = (["--autoremove"] if self.autoremove else []) + (["--force-depends"] if self.force else [])
        _, outcome = self._opkg([*flags, "remove", *present], phase="remove")
        after = self.system.installed()
        result["removed"] = [p for p in present if p not in after]
        # Only what our run removed: another process may remove packages while we wait for the lock.
        result["autoremoved"] = sorted(p for p in before if p not in after and p not in present
                                       and p in self._removing)
        self._check_stopped(result)
        left = [p for p in present if p in after]
        if left:
            raise JobError(_uninstall_error(outcome, left), outcome.code or errors.OPKG_FAILED,
                           dict(result, dependents=outcome.dependents))
        return result


class UpdatePackageListsJob(OpkgJob):
    """Refresh the package lists (``opkg update``)."""

    job_type = "update"
    __slots__ = ()

    def dedup_key(self) -> tuple:
        return ("update",)

    def _work(self) -> dict:
        from .progress import StepProgress

        feeds = self.system.conf().feed_names()
        self._steps = StepProgress(len(feeds) or 1, steps=1)
        run, outcome = self._opkg(["update"], phase="update")
        result = {"feeds": len(feeds), "failed_feeds": run.rc if run.rc > 0 else 0}
        self._check_stopped(result)
        if run.rc != 0:
            raise JobError(outcome.message, outcome.code or errors.DOWNLOAD_FAILED, result)
        return result


# ----------------------------------------------------------------- helpers
def _fully_installed(installed: dict, name: str) -> bool:
    package = installed.get(name)
    return package is not None and package.state == "installed"


def _valid_dest(dest: str | None) -> str:
    if not dest:
        return ""
    # A dest name is only ever a word from opkg.conf; never an option.
    validate_package_name(dest)
    return dest


def _uninstall_error(outcome: OpkgOutcome, left: list[str]) -> str:
    if outcome.dependents:
        needed = "; ".join(f"{p} is needed by {', '.join(d)}" for p, d in outcome.dependents.items())
        return f"cannot remove {', '.join(left)}: {needed} (use force to remove anyway)\n{outcome.message}"
    return outcome.message if not outcome.ok else f"{', '.join(left)} still installed after opkg remove"


# ------------------------------------------------------------ registration
def register_opkg_jobs(registry: JobTypeRegistry, system: OpkgSystem, default_timeout: float | None) -> None:
    """Add ``install``, ``uninstall`` and ``update`` to a daemon's catalogue."""

    def install(params: dict) -> Job:
        p = Params(params, "install")
        job = InstallDependenciesJob(system, p.take("packages", list), dest=p.take("dest", str, None),
                                     update=p.choice("update", UPDATE_CHOICES, "auto"),
                                     atomic=p.take("atomic", bool, True), **_common(p, default_timeout))
        p.finish()
        return job

    def uninstall(params: dict) -> Job:
        p = Params(params, "uninstall")
        job = UninstallDependenciesJob(system, p.take("packages", list), autoremove=p.take("autoremove", bool, True),
                                       force=p.take("force", bool, False), **_common(p, default_timeout))
        p.finish()
        return job

    def update(params: dict) -> Job:
        p = Params(params, "update")
        job = UpdatePackageListsJob(system, **_common(p, default_timeout))
        p.finish()
        return job

    common = RUN_OPTIONS
    def recover(intent: dict) -> Recovery:
        from . import recovery

        return recovery.recover(system, intent)

    registry.register("install", install, "Install opkg packages and their dependencies (all or nothing).",
                      {"packages": "list of package names", "dest": "opkg destination, e.g. sd",
                       "update": "auto | always | never: refresh package lists first",
                       "atomic": "roll back on failure (default true)", **common}, recover=recover)
    registry.register("uninstall", uninstall, "Remove opkg packages.",
                      {"packages": "list of package names", "autoremove": "also remove orphaned dependencies "
                       "(default true)", "force": "remove even if other packages depend on them", **common},
                      recover=recover)
    registry.register("update", update, "Refresh the opkg package lists (opkg update).", common, recover=recover)


def _common(p: Params, default_timeout: float | None) -> dict:
    return p.run_options(default_timeout)
