"""Job states and the small value types a job reports."""
from __future__ import annotations

from typing import NamedTuple

QUEUED = "queued"
HELD = "held"  # submitted but waiting for release_job()
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
INTERRUPTED = "interrupted"

ALL_STATES = (QUEUED, HELD, RUNNING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED)
ACTIVE_STATES = frozenset((QUEUED, HELD, RUNNING))
TERMINAL_STATES = frozenset((SUCCEEDED, FAILED, CANCELLED, INTERRUPTED))


class Progress(NamedTuple):
    """How far a job is: ``fraction`` in 0..1 (None when unknown) and a short message."""

    fraction: float | None = None
    message: str = ""

    def to_dict(self) -> dict:
        return {"fraction": self.fraction, "message": self.message}
