"""``OpkgSystem``: the opkg of one device (or sandbox root) — its
configuration, fast reads of its status and lists, and its runner."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .. import errors
from ..errors import JobError
from .conf import OpkgConf, load_conf
from .output import OpkgOutcome, parse_errors, summarize
from .runner import LineSink, OpkgRun, OpkgRunner, RunControl, RunnerSettings
from .status import (
    AvailablePackage,
    InstalledPackage,
    available_packages,
    free_kb,
    installed_packages,
    lists_age,
    required_kb,
    which_installed,
)


class OpkgSystem:
    """Everything the opkg jobs need to know about and do to one opkg root."""

    def __init__(self, settings: RunnerSettings, *, dest: str = "", lists_max_age: float = 86400.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.default_dest = dest
        self.lists_max_age = lists_max_age
        self.clock = clock
        self.runner = OpkgRunner(settings, is_lock_busy)

    @classmethod
    def from_settings(cls, opkg: Any) -> OpkgSystem:
        """From the daemon's ``OpkgSettings`` (see docs/config.md)."""
        runner = RunnerSettings(binary=opkg.binary, offline_root=opkg.offline_root, conf=opkg.conf,
                                extra_args=list(opkg.extra_args), timeout=opkg.timeout,
                                lock_wait=opkg.lock_wait, env_path=opkg.env_path)
        return cls(runner, dest=opkg.dest, lists_max_age=opkg.lists_max_age)

    # ------------------------------------------------------------- reading
    def conf(self) -> OpkgConf:
        """opkg's configuration as opkg would load it now."""
        try:
            return load_conf(self.settings.conf or None, self.settings.offline_root or None)
        except OSError as exc:
            raise JobError(f"cannot read opkg configuration: {exc}", errors.OPKG_FAILED) from None

    def installed(self) -> dict[str, InstalledPackage]:
        return installed_packages(self.conf())

    def which_installed(self, names: list[str]) -> dict[str, str | None]:
        """Installed version of each name (None: absent or half-configured)."""
        return which_installed(self.conf(), names)

    def available(self) -> dict[str, AvailablePackage]:
        return available_packages(self.conf())

    def lists_are_stale(self) -> bool:
        """True when a feed list is missing or older than ``lists_max_age``."""
        age = lists_age(self.conf(), self.clock())
        return age is None or age > self.lists_max_age

    def space_shortfall(self, names: list[str], dest: str) -> tuple[int, int, str] | None:
        """(needed KiB, free KiB, path) when the packages will not fit, else
        None (also when the lists do not give every size)."""
        conf = self.conf()
        needed = required_kb(conf, names, installed_packages(conf))
        if needed is None:
            return None
        path = conf.space_path(dest or "root")
        free = free_kb(path)
        return (needed, free, path) if needed > free else None

    def dest_names(self) -> list[str]:
        return self.conf().dest_names()

    # ------------------------------------------------------------- running
    def run(self, args: list[str], on_line: LineSink, control: RunControl,
            on_wait: Callable[[float], None] | None = None) -> tuple[OpkgRun, OpkgOutcome]:
        """Run opkg and understand what it said."""
        run = self.runner.run(args, on_line, control, on_wait)
        return run, summarize(run.rc, run.stdout, run.stderr, self._feed_names())

    def _feed_names(self) -> dict[str, str]:
        try:
            return self.conf().feed_names()
        except JobError:
            return {}


def is_lock_busy(run: OpkgRun) -> bool:
    """Did this run fail only because another process holds opkg's lock?"""
    return run.rc != 0 and any(e.code == errors.LOCK_BUSY for e in parse_errors(run.stderr))
