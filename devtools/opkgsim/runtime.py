"""State shared by the commands of one opkg run."""
from __future__ import annotations

import dataclasses
import os
import random
import shutil
import signal
import string
import sys
from types import FrameType

from .conf import Config
from .messages import Messages
from .pkgdb import PackageDB


@dataclasses.dataclass
class Run:
    """One invocation: configuration, messages, package database, temp dir."""

    conf: Config
    msgs: Messages
    db: PackageDB
    tmp_dir: str = ""
    state_changed: bool = False
    deps_checked: set[str] = dataclasses.field(default_factory=set)

    def flag(self, name: str) -> bool:
        return self.conf.flag(name)

    @property
    def noaction(self) -> bool:
        return self.conf.flag("noaction") or self.conf.flag("test")

    def make_tmp_dir(self) -> None:
        """``$TMPDIR/opkg-XXXXXX`` (or ``-t DIR``), like opkg_conf_load()."""
        base = self.conf.opts.tmp_dir or os.environ.get("TMPDIR") or "/tmp"
        self.tmp_dir = make_temp_dir(f"{base}/opkg-")

    def remove_tmp_dir(self) -> None:
        if self.tmp_dir:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def write_status_if_changed(self) -> None:
        """write_status_files_if_changed()."""
        if self.state_changed and not self.noaction:
            self.msgs.info("write_status_files_if_changed", "Writing status file.\n")
            self.db.write_status_files()

    def install_sigint_handler(self) -> None:
        """opkg's sigint_handler: save the status database, exit 130."""
        def handler(signum: int, frame: FrameType | None) -> None:
            signal.signal(signum, signal.SIG_DFL)
            self.msgs.notice("Interrupted. Writing out status database.\n")
            self.write_status_if_changed()
            sys.stdout.flush()
            os._exit(128 + signum)

        signal.signal(signal.SIGINT, handler)


def make_temp_dir(prefix: str) -> str:
    """mkdtemp() with a 6-character XXXXXX suffix, as C's mkdtemp makes."""
    alphabet = string.ascii_letters + string.digits
    for _ in range(100):
        path = prefix + "".join(random.choices(alphabet, k=6))
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(prefix)
