"""``STATE_DIR/schedules.json``: the scheduler's schedules across restarts.

The file holds one JSON object, ``{"version": 1, "schedules": [record, ...]}``;
a record is what :meth:`Scheduler <pineapple.jobs.schedule.scheduler.Scheduler>`
saves for one schedule (definition, next run, last run, counters). Every save
rewrites the whole file atomically: write a temporary file, fsync it, rename
it over the old one, fsync the directory. A crash therefore leaves either the
old or the new file, never a torn one. The file is small (a few hundred bytes
per schedule), so rewriting it on every change costs little; keep
``STATE_DIR`` on RAM (tmpfs) on devices anyway so flash is not worn.

Loading never fails because of the file's content: a file that is not valid
JSON, or not the expected shape, is renamed to ``schedules.json.corrupt``
(replacing an older one, so at most one is kept) and loading answers no
schedules, with a warning in the log.
"""
from __future__ import annotations

import json
import logging
import os

log = logging.getLogger("pineapple.jobs.schedule")

FILE_NAME = "schedules.json"
CORRUPT_SUFFIX = ".corrupt"
FORMAT_VERSION = 1


class StoreFormatError(ValueError):
    """The file is readable but is not a schedules file this version understands."""


class ScheduleStore:
    """Reads and atomically rewrites ``schedules.json`` in ``state_dir``."""

    def __init__(self, state_dir: str | os.PathLike) -> None:
        self.dir = os.fspath(state_dir)
        self.path = os.path.join(self.dir, FILE_NAME)

    def load(self) -> list[dict]:
        """The saved records, or ``[]`` when there is no file or it is corrupt
        (then it is set aside, see the module docstring)."""
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return []
        except OSError as exc:  # unreadable: start empty but leave the file alone
            log.warning("cannot read %s (%s): starting without saved schedules", self.path, exc)
            return []
        try:
            return parse_records(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            self.set_aside(str(exc))
            return []

    def save(self, records: list[dict]) -> None:
        """Replace the file with ``records`` (atomic; raises OSError on failure)."""
        os.makedirs(self.dir, exist_ok=True)
        data = json.dumps({"version": FORMAT_VERSION, "schedules": records}, indent=1, ensure_ascii=False)
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(data + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.dir)

    def set_aside(self, reason: str, copy: bool = False) -> str | None:
        """Keep the current file as ``schedules.json.corrupt`` for inspection:
        renamed (the default) or copied (when the good records are still
        used and the file will be rewritten). Returns that path, or None."""
        target = self.path + CORRUPT_SUFFIX
        try:
            if copy:
                _copy_file(self.path, target)
            else:
                os.replace(self.path, target)
        except OSError as exc:
            log.warning("schedules file %s is unusable (%s) and could not be kept aside: %s",
                        self.path, reason, exc)
            return None
        log.warning("schedules file %s is unusable (%s); kept as %s", self.path, reason, target)
        return target


def parse_records(raw: bytes) -> list[dict]:
    """The records of a schedules file's content; raises ValueError when it
    is not valid JSON of the expected shape."""
    data = json.loads(raw)
    if not isinstance(data, dict) or not isinstance(data.get("schedules"), list):
        raise StoreFormatError("expected an object with a 'schedules' list")
    version = data.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise StoreFormatError(f"unsupported format version {version!r} (this daemon reads {FORMAT_VERSION})")
    if not all(isinstance(record, dict) for record in data["schedules"]):
        raise StoreFormatError("every schedule must be an object")
    return data["schedules"]


def _copy_file(source: str, target: str) -> None:
    # Not shutil.copyfile: shutil's imports (bz2, lzma, fnmatch) cost the resident daemon ~0.5 MB.
    with open(source, "rb") as src, open(target, "wb") as dst:
        dst.write(src.read())


def _fsync_dir(path: str) -> None:
    # Makes the rename itself durable; not every filesystem allows it.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
