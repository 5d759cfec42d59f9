"""After a crash: finish what an interrupted opkg job left half done.

An opkg job writes its intent to its journal record before each opkg run
that changes the device, and again with the run's process group id and
start time once opkg runs (:mod:`pineapple.opkg.jobs`). A restart finds the
records that still name an intent and calls :func:`recover` for each,
before the daemon takes any request:

1. **Stop our orphan.** The killed daemon's opkg lives on in its own
   process group, keeping opkg's lock. If the recorded group leader still
   has the recorded start time (a recycled pid never matches) — or, when
   the daemon died before it could write the pid down, if a process
   carries the run's random tag in its environment — the group gets
   SIGINT (opkg writes its status database and exits 130), then SIGTERM,
   then SIGKILL (:func:`~pineapple.opkg.runner.is_our_group`,
   :func:`~pineapple.opkg.runner.stop_process_group`).
2. **Read opkg's status database** and compare it with the intent.
3. **Undo.** An install removes, with ``opkg remove --force-depends``, the
   packages it set out to add that were absent before its run
   (``absent_before``; nothing another process installed): all of them
   when the job was atomic or was rolling back, only those left in a half
   state (``unpacked``, ``half-installed``, being removed) and the new ones
   depending on them otherwise. When opkg had finished (every requested and
   new package fully installed) before the crash, nothing is removed.
   An uninstall finishes removing the packages of its scope that opkg had
   begun to remove (status ``deinstall ...``). An update only stops its opkg.

An opkg that died without writing its database (SIGKILL; or real opkg,
which exits at its next message once the daemon's pty is gone) leaves the
files and ``info/NAME.*`` of what it unpacked with no status entry: for the
install's ``absent_before`` packages those are deleted too (``debris``).

The :class:`~pineapple.jobs.registry.Recovery` returned becomes the job's
``result["recovery"]`` (``opkg_stopped``, ``removed``, ``left``, ``kept``, ``debris``)
and one line in its error and log; the job stays ``interrupted``.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from ..errors import JobError
from ..jobs.registry import Recovery
from .conf import OpkgConf
from .debris import delete_unrecorded, drop_placeholders, listed_files, remove_emptied_dirs
from .names import validate_package_name
from .runner import RunControl, is_our_group, stop_process_group, tagged_groups
from .status import InstalledPackage
from .system import OpkgSystem

log = logging.getLogger("pineapple.opkg.recovery")
RUN_LIMIT = 120.0  # seconds recovery's own opkg run may take (at most opkg.timeout)
TAG_SETTLE = 2.0  # seconds to look for a run known only by its tag


def recover(system: OpkgSystem, intent: dict) -> Recovery:
    """Finish what the interrupted opkg job with ``intent`` left half done."""
    log.info("recovery: intent %s", json.dumps(intent, sort_keys=True))
    stopped = stop_our_opkg(intent.get("opkg"))
    conf, installed = system.conf(), system.installed()
    op = intent.get("op")
    kept: list[str] = []
    debris: list[str] = []
    files: list[str] = []
    if op == "install":
        absent = _names(intent.get("absent_before"))
        debris, files = delete_unrecorded(conf, absent, installed)
        if debris:
            log.warning("recovery: %s unpacked but never recorded by opkg: deleted its files", ", ".join(debris))
        targets, kept = _install_leftovers(intent, installed)
    elif op == "uninstall":
        targets = _uninstall_leftovers(conf, intent, installed)
    else:
        targets = []
    files += listed_files(conf, installed, targets)  # read before opkg removes the lists
    removed, left = _remove(system, targets) if targets else ([], [])
    if op == "install":
        remove_emptied_dirs(conf, files)  # as a rollback leaves the device
        drop_placeholders(conf, absent)
    removed += [name for name in debris if name not in removed]
    report = {"op": op, "phase": intent.get("phase"), "opkg_stopped": stopped,
              "removed": removed, "left": left, "kept": kept, "debris": debris}
    return Recovery(report, _summary(op, stopped, removed, left, kept))


# ------------------------------------------------------------------ steps
def stop_our_opkg(process: Any, search_tag: bool = True) -> dict | None:
    """Stop the process group of the run ``process`` (an intent's ``opkg``:
    ``tag``, ``pid``, ``pgid``, ``start``) if it is still ours; what was
    stopped (``{"pgid", "signal"}``) or None. ``search_tag``: look for a
    run known only by its tag (see :func:`_find_tagged`)."""
    if not isinstance(process, dict):
        return None  # the run had not begun
    pgid, start, tag = process.get("pgid"), process.get("start"), process.get("tag")
    if _is_int(pgid) and _is_int(start):
        groups = [pgid] if is_our_group(pgid, start) else []  # else it ended; the pid may be anyone's now
    elif search_tag and isinstance(tag, str) and tag and pgid is None:
        groups = _find_tagged(tag)  # the daemon died between spawning opkg and writing its pid down
    else:
        groups = []  # no start time: it had ended by the time it was written down
    stopped = None
    for group in groups:
        signal_name = stop_process_group(group)
        if signal_name is not None:
            stopped = {"pgid": group, "signal": signal_name}
    return stopped


def _find_tagged(tag: str) -> list[int]:
    """The run's groups, looked for during TAG_SETTLE seconds: a run forked
    just before the daemon died may still be on its way to exec opkg (on
    a loaded CPU, a while); once it is opkg its environment has the tag."""
    deadline = time.monotonic() + TAG_SETTLE
    while True:
        groups = tagged_groups(tag)
        if groups or time.monotonic() >= deadline:
            return groups
        time.sleep(0.05)


def _install_leftovers(intent: dict, installed: dict[str, InstalledPackage]) -> tuple[list[str], list[str]]:
    """(to remove, kept): what the interrupted install added, by the rules
    in the module's docstring."""
    ours = [name for name in _names(intent.get("absent_before")) if name in installed]
    requested = _names(intent.get("packages"))
    if not ours:
        return [], []
    finished = all(installed[name].is_whole for name in ours) and all(
        name in installed and installed[name].is_whole for name in requested)
    if intent.get("phase") != "rollback" and finished:
        return [], ours
    if intent.get("atomic") is not False or intent.get("phase") == "rollback":
        return ours, []
    remove = {name for name in ours if not installed[name].is_whole}
    grew = True
    while grew:  # a new package that depends on one removed would be left broken
        more = {name for name in ours if name not in remove and _depends_on(installed[name], remove, installed)}
        remove |= more
        grew = bool(more)
    return [name for name in ours if name in remove], [name for name in ours if name not in remove]


def _uninstall_leftovers(conf: OpkgConf, intent: dict, installed: dict[str, InstalledPackage]) -> list[str]:
    """The packages of the interrupted removal that opkg had begun to
    remove: marked ``deinstall``, or (opkg died before it wrote its
    database) still listed but with their ``info/NAME.control`` gone."""
    return [name for name in _names(intent.get("scope")) if name in installed and (
        installed[name].want == "deinstall"
        or not os.path.exists(os.path.join(conf.info_dir(installed[name].dest), f"{name}.control")))]


def _remove(system: OpkgSystem, names: list[str]) -> tuple[list[str], list[str]]:
    """``opkg remove --force-depends names``; (removed, still there)."""
    log.warning("recovery: removing %s", ", ".join(names))
    control = RunControl()
    # The daemon does not listen until recovery ends: a hanging removal may not hold it for opkg.timeout.
    timer = threading.Timer(min(system.settings.timeout or RUN_LIMIT, RUN_LIMIT), control.stop, ("timeout",))
    timer.daemon = True
    timer.start()
    try:
        run, outcome = system.run(["remove", "--force-depends", *names], _log_line, control)
    except JobError as exc:  # opkg missing, lock held for longer than lock_wait, a timeout ...
        log.error("recovery: opkg remove failed: %s", exc)
    else:
        if run.rc != 0:
            log.error("recovery: opkg remove exited %d: %s", run.rc, outcome.message)
    finally:
        timer.cancel()
    after = system.installed()
    return [name for name in names if name not in after], [name for name in names if name in after]


# --------------------------------------------------------------- helpers
def _summary(op: Any, stopped: dict | None, removed: list[str], left: list[str], kept: list[str]) -> str:
    parts = []
    if stopped is not None:
        parts.append(f"stopped the interrupted opkg (process group {stopped['pgid']}, {stopped['signal']})")
    if removed:
        parts.append(f"removed {', '.join(removed)} (left by the interrupted {op})")
    if left:
        parts.append(f"could not remove {', '.join(left)} (see the daemon's log)")
    if kept:
        parts.append(f"opkg had finished before the stop: kept {', '.join(kept)}")
    if not parts:
        parts.append("nothing was left half done")
    return "recovery: " + "; ".join(parts)


def _depends_on(package: InstalledPackage, names: set[str], installed: dict[str, InstalledPackage]) -> bool:
    for group in package.depends:
        for dep in group:
            if dep.name in names or any(dep.name in installed[n].provides for n in names if n in installed):
                return True
    return False


def _names(value: Any) -> list[str]:
    """Valid package names only: an intent comes from a file on disk, and
    nothing in it may become an opkg option."""
    names = []
    for name in value if isinstance(value, list) else []:
        try:
            names.append(validate_package_name(name))
        except (JobError, TypeError):
            log.warning("recovery: ignoring %r: not a package name", name)
    return names


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _log_line(line: str) -> None:
    log.debug("%s", line)
