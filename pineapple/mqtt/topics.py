"""Topic names under a device's prefix (default ``pineapple/<device-id>``)."""
from __future__ import annotations

import re
import socket

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
REF_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def device_id(configured: str = "") -> str:
    """The configured id, else the hostname, made safe for a topic level."""
    return _UNSAFE.sub("_", configured or socket.gethostname()) or "device"


class Topics:
    """Every topic one daemon publishes to or listens on."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.rstrip("/")

    @classmethod
    def for_device(cls, device: str, prefix: str = "") -> Topics:
        return cls(prefix or f"pineapple/{device}")

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    def state(self, job_id: str) -> str:
        return f"{self.prefix}/jobs/{job_id}/state"

    def progress(self, job_id: str) -> str:
        return f"{self.prefix}/jobs/{job_id}/progress"

    def log(self, job_id: str) -> str:
        return f"{self.prefix}/jobs/{job_id}/log"

    @property
    def notifications(self) -> str:
        return f"{self.prefix}/notifications"

    @property
    def all_states(self) -> str:
        return f"{self.prefix}/jobs/+/state"

    @property
    def submit(self) -> str:
        return f"{self.prefix}/jobs/submit"

    @property
    def cancel(self) -> str:
        return f"{self.prefix}/jobs/cancel"

    def reply(self, ref: str | None) -> str:
        """``…/jobs/reply/<ref>``; ``…/jobs/reply`` (no ref level, so no valid
        ref shares it) for a command whose ref could not be read."""
        return f"{self.prefix}/jobs/reply/{ref}" if ref is not None else f"{self.prefix}/jobs/reply"

    def rollout(self, rollout_id: str) -> str:
        """A roll-out record for this device (retained; written by the fleet CLI)."""
        return f"{self.prefix}/rollouts/{rollout_id}"

    def rollout_result(self, rollout_id: str) -> str:
        """This device's outcome of a roll-out (retained; written by the device)."""
        return f"{self.prefix}/rollouts/{rollout_id}/result"

    @property
    def all_rollouts(self) -> str:
        return f"{self.prefix}/rollouts/+"

    @property
    def all_rollout_results(self) -> str:
        return f"{self.prefix}/rollouts/+/result"

    def rollout_id_of(self, topic: str) -> str | None:
        """The id in ``…/rollouts/<id>`` or ``…/rollouts/<id>/result``."""
        head, _, rest = topic.partition(f"{self.prefix}/rollouts/")
        if head or not rest:
            return None
        rollout_id = rest[: -len("/result")] if rest.endswith("/result") else rest
        return rollout_id if REF_PATTERN.match(rollout_id) else None

    def job_id_of(self, topic: str) -> str | None:
        """The job id in a ``…/jobs/<id>/state`` topic."""
        head, _, rest = topic.partition(f"{self.prefix}/jobs/")
        if head or not rest.endswith("/state"):
            return None
        return rest[: -len("/state")] or None
