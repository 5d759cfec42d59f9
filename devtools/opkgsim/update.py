"""``opkg update`` (opkg_update_cmd in libopkg/opkg_cmd.c).

Each ``src/gz`` feed's ``Packages.gz`` (``src``: ``Packages``) is copied to
``LISTS_DIR/NAME`` as downloaded. opkg-lede keeps ``src/gz`` lists
gzip-compressed and reads them through its gzip reader; older opkg inflated
them (printing "Inflating ..."), which the measured output does not show.
The exit status is the number of feeds that failed.
"""
from __future__ import annotations

import os

from . import faults, fetch
from .runtime import Run


def update_cmd(run: Run, args: list[str]) -> int:
    lists_dir = run.conf.lists_dir
    if not os.path.isdir(lists_dir):
        if os.path.exists(lists_dir):
            run.msgs.error("opkg_update_cmd", f"{lists_dir} exists, but is not a directory.\n")
            return -1
        try:
            os.makedirs(lists_dir, mode=0o755)
        except OSError as exc:
            run.msgs.perror("make_directory", f"Cannot create directory `{lists_dir}'", exc.errno or 0)
            return -1
    failures = 0
    for feed in run.conf.feeds:
        url = f"{feed.url}/{'Packages.gz' if feed.gzip else 'Packages'}"
        list_file = f"{lists_dir}/{feed.name}"

        def slow_or_stuck(name: str = feed.name) -> None:
            faults.delay("OPKG_STANDIN_UPDATE_DELAY")
            faults.hang_if("update", name)

        if fetch.download(run, url, list_file, before_copy=slow_or_stuck):
            run.msgs.notice(f"Updated list of available packages in {list_file}\n")
        else:
            failures += 1
            run.msgs.notice(f"*** Failed to download the package list from {url}\n\n")
    return failures
