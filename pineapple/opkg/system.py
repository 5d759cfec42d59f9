"""``OpkgSystem``: the opkg of one device (or sandbox root) — its
configuration, fast reads of its status and lists, and its runner.

opkg's configuration and status files are parsed once and reused while
they are unchanged (:mod:`pineapple.opkg.filecache`): a job or an
``installed`` query then costs a few ``stat`` calls instead of a parse. The
feed lists are parsed on each use and never kept: they are large (an
OpenWrt feed lists thousands of packages) and only an install that has work
to do reads them, in the opkg helper process when the runner is a
:class:`~.helper.HelperRunner` (:meth:`OpkgSystem.plan_install`), so the
daemon never holds them."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import errors
from ..errors import JobError
from .conf import OpkgConf, conf_sources, load_conf
from .filecache import FileCache
from .runner import LineSink, OpkgRun, OpkgRunner, RunControl, RunnerSettings, SpawnHook
from .status import (
    AvailablePackage,
    InstalledPackage,
    available_packages,
    free_kb,
    install_plan,
    installed_packages,
    installed_versions,
    lists_age,
    provided_names,
)

if TYPE_CHECKING:
    from .output import OpkgOutcome


class InstallPlan(NamedTuple):
    """What an install will add, from the feed lists (:meth:`OpkgSystem.plan_install`)."""

    packages: list[str] | None  # requested + missing dependencies, in order; None: the lists cannot satisfy
    needed_kb: int | None  # what they need once installed; None: unknown (not all listed or sized)


class OpkgSystem:
    """Everything the opkg jobs need to know about and do to one opkg root."""

    def __init__(self, settings: RunnerSettings, *, dest: str = "", lists_max_age: float = 86400.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.default_dest = dest
        self.lists_max_age = lists_max_age
        self.clock = clock
        self._runner: OpkgRunner | None = None
        self._conf = FileCache(self._load_conf, clock)
        self._installed = FileCache(self._load_installed, clock)

    @classmethod
    def from_settings(cls, opkg: Any) -> OpkgSystem:
        """From the daemon's ``OpkgSettings`` (see docs/config.md)."""
        runner = RunnerSettings(binary=opkg.binary, offline_root=opkg.offline_root, conf=opkg.conf,
                                extra_args=list(opkg.extra_args), timeout=opkg.timeout,
                                lock_wait=opkg.lock_wait, env_path=opkg.env_path)
        return cls(runner, dest=opkg.dest, lists_max_age=opkg.lists_max_age)

    @property
    def runner(self) -> OpkgRunner:
        """The runner: a :class:`~.helper.HelperRunner`, so ``sh`` stays
        out of the daemon. Made on first use: a daemon whose jobs never
        run opkg (installed packages only) does not load that code."""
        if self._runner is None:
            from .helper import HelperRunner

            self._runner = HelperRunner(self.settings, is_lock_busy)
        return self._runner

    @runner.setter
    def runner(self, runner: OpkgRunner) -> None:
        self._runner = runner

    # ------------------------------------------------------------- reading
    def conf(self) -> OpkgConf:
        """opkg's configuration as opkg would load it now (shared: do not modify)."""
        return self._conf.get()

    def installed(self) -> dict[str, InstalledPackage]:
        """Every package in the dests' status files, by name (a fresh dict)."""
        return dict(self._installed.get())

    def which_installed(self, names: list[str]) -> dict[str, str | None]:
        """Installed version of each name (None: absent or half-configured)."""
        return installed_versions(self._installed.get(), names)

    def available(self) -> dict[str, AvailablePackage]:
        """The feed lists, parsed in this process (the jobs use :meth:`plan_install`)."""
        return available_packages(self.conf())

    def lists_are_stale(self) -> bool:
        """True when a feed list is missing or older than ``lists_max_age``."""
        age = lists_age(self.conf(), self.clock())
        return age is None or age > self.lists_max_age

    def plan_install(self, names: list[str],
                     installed: dict[str, InstalledPackage] | None = None) -> InstallPlan:
        """What installing ``names`` adds and needs, by the feed lists and
        ``installed`` (default: the status now). A runner that has a
        ``plan_install`` (:class:`~.helper.HelperRunner`) parses the lists
        in its helper process, which exits soon after, and sends back only
        the answer: a 6,000-package list costs ~14 MiB while parsed, and a
        process keeps some of that after freeing it. Any other runner: here."""
        satisfied = sorted(provided_names((self._installed.get() if installed is None else installed).values()))
        remote = getattr(self.runner, "plan_install", None)
        packages, needed = remote(names, satisfied) if remote is not None \
            else self.plan_in_process(names, satisfied)
        return InstallPlan(packages, needed)

    def plan_in_process(self, names: list[str], satisfied: list[str]) -> tuple[list[str] | None, int | None]:
        """:meth:`plan_install`'s answer computed in this process (the
        helper's side of it; ``satisfied``: the installed names and what
        they provide)."""
        return install_plan(self.conf(), names, satisfied)

    def space_shortfall(self, names: list[str], dest: str,
                        plan: InstallPlan | None = None) -> tuple[int, int, str] | None:
        """(needed KiB, free KiB, path) when the packages will not fit, else
        None (also when the lists do not give every size). ``plan``: their
        :meth:`plan_install`, if already made."""
        needed = (plan if plan is not None else self.plan_install(names)).needed_kb
        if needed is None:
            return None
        path = self.conf().space_path(dest or "root")
        free = free_kb(path)
        return (needed, free, path) if needed > free else None

    def dest_names(self) -> list[str]:
        return self.conf().dest_names()

    # ------------------------------------------------------------- running
    def run(self, args: list[str], on_line: LineSink, control: RunControl,
            on_wait: Callable[[float], None] | None = None,
            on_spawn: SpawnHook | None = None, tag: str | None = None) -> tuple[OpkgRun, OpkgOutcome]:
        """Run opkg and understand what it said (arguments: ``OpkgRunner.run``)."""
        from .output import summarize

        run = self.runner.run(args, on_line, control, on_wait, on_spawn, tag)
        return run, summarize(run.rc, run.stdout, run.stderr, self._feed_names())

    def _load_conf(self) -> tuple[OpkgConf, list[str]]:
        try:
            conf = load_conf(self.settings.conf or None, self.settings.offline_root or None)
        except OSError as exc:
            raise JobError(f"cannot read opkg configuration: {exc}", errors.OPKG_FAILED) from None
        return conf, conf_sources(conf)

    def _load_installed(self) -> tuple[dict[str, InstalledPackage], list[str]]:
        conf = self.conf()
        # The configuration's files too: a dest added or moved changes the answer.
        return installed_packages(conf), [*conf.status_paths().values(), *conf_sources(conf)]

    def _feed_names(self) -> dict[str, str]:
        try:
            return self.conf().feed_names()
        except JobError:
            return {}


def is_lock_busy(run: OpkgRun) -> bool:
    """Did this run fail only because another process holds opkg's lock?"""
    from .output import parse_errors

    return run.rc != 0 and any(e.code == errors.LOCK_BUSY for e in parse_errors(run.stderr))
