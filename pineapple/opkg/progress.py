"""Turning opkg's stdout into a job's progress fraction and message."""
from __future__ import annotations

from .output import CONFIGURING, DOWNLOADING, INSTALLING, LIST_FAILED, REMOVING, UPDATED, UPGRADING, ProgressEvent

# Each package goes through three visible steps: install notice, download, configure.
_STEP_OF = {INSTALLING: 1, UPGRADING: 1, DOWNLOADING: 2, CONFIGURING: 3}
_VERB = {INSTALLING: "installing", UPGRADING: "upgrading", DOWNLOADING: "downloading",
         CONFIGURING: "configuring", REMOVING: "removing", UPDATED: "updated lists of",
         LIST_FAILED: "failed to fetch lists of"}
CEILING = 0.99  # 1.0 is only reached when the job has succeeded (set by the manager)


class StepProgress:
    """Maps opkg events for ``expected`` packages onto [start, end)."""

    def __init__(self, expected: int, start: float = 0.0, end: float = CEILING, steps: int = 3) -> None:
        self.expected = max(1, expected)
        self.start, self.end, self.steps = start, end, steps
        self._done: dict[str, int] = {}

    def advance(self, event: ProgressEvent) -> tuple[float, str] | None:
        """(fraction, message) after ``event``, or None if it tells nothing new."""
        verb = _VERB.get(event.stage)
        if verb is None:
            return None
        package = event.package or "?"
        step = min(_STEP_OF.get(event.stage, self.steps), self.steps)  # steps=1: a download is the whole step
        self._done[package] = max(self._done.get(package, 0), step)
        return self.fraction(), f"{verb} {package}"

    def fraction(self) -> float:
        total = self.expected * self.steps
        done = min(sum(self._done.values()), total)
        return min(self.end, self.start + (self.end - self.start) * done / total)
