"""The catalogue of job types a daemon can run, registered by name.

A request names a type from this catalogue and gives plain JSON parameters;
it can never name Python code to import.
"""
from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, NamedTuple

from ..errors import INVALID_FIELD, MISSING_FIELD, UNKNOWN_JOB_TYPE, JobError
from ..values import accepts, describe
from .job import Job

_MISSING = object()

# The documented ranges of the parameters every job type takes (docs/protocol.md).
MAX_TIMEOUT = 7 * 86400.0
MAX_RETRIES = 10
MAX_RETRY_DELAY = 3600.0
RUN_OPTIONS = {
    "timeout": f"seconds before the job is stopped, > 0 and <= {MAX_TIMEOUT:g} (default: daemon.job_timeout)",
    "max_retries": f"re-runs after a failure, 0..{MAX_RETRIES} (default 0)",
    "retry_delay": f"seconds between re-runs, 0..{MAX_RETRY_DELAY:g} (default 0)",
}


class Recovery(NamedTuple):
    """What a job type's ``recover(intent)`` did after a crash: a JSON-safe
    ``report`` (it becomes the job's ``result["recovery"]``) and a one-line
    ``summary`` for the job's error and log."""

    report: dict
    summary: str


class JobType(NamedTuple):
    """A runnable job type: ``factory(params)`` builds the job (and raises
    :class:`JobError` with a stable code for bad parameters); ``recover``,
    when given, finishes or undoes what a job of this type left half done
    when the daemon died (it gets the job's :attr:`Job.intent`)."""

    name: str
    description: str
    factory: Callable[[dict], Job]
    params: dict[str, str]  # parameter -> description
    recover: Callable[[dict], Recovery] | None = None

    def describe(self) -> dict:
        return {"name": self.name, "description": self.description, "params": dict(self.params)}


class JobTypeRegistry:
    """Name -> :class:`JobType`."""

    def __init__(self) -> None:
        self._types: dict[str, JobType] = {}

    def register(self, name: str, factory: Callable[[dict], Job], description: str,
                 params: dict[str, str] | None = None,
                 recover: Callable[[dict], Recovery] | None = None) -> JobType:
        """Add a job type; registering a name twice is an error."""
        if name in self._types:
            raise ValueError(f"job type {name!r} is already registered")
        job_type = JobType(name, description, factory, dict(params or {}), recover)
        self._types[name] = job_type
        return job_type

    def create(self, name: Any, params: dict) -> Job:
        """Build a job of type ``name`` from JSON ``params``."""
        job_type = self._types.get(name) if isinstance(name, str) else None
        if job_type is None:
            known = ", ".join(sorted(self._types)) or "none"
            raise JobError(f"unknown job type {name!r} (known: {known})", UNKNOWN_JOB_TYPE)
        return job_type.factory(params)

    def recover(self, name: str, intent: dict) -> Recovery | None:
        """Run the type's ``recover(intent)``; None when it has none."""
        job_type = self._types.get(name)
        if job_type is None or job_type.recover is None:
            return None
        return job_type.recover(intent)

    def catalogue(self) -> list[dict]:
        return [self._types[name].describe() for name in sorted(self._types)]

    def __contains__(self, name: object) -> bool:
        return name in self._types


class Params:
    """Reads a job type's JSON parameters with clear errors: take each known
    parameter with :meth:`take`, then :meth:`finish` rejects any other key
    (a typo must not silently mean the default)."""

    def __init__(self, params: dict, job_type: str) -> None:
        self._params = dict(params)
        self._job_type = job_type

    def take(self, name: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        value = self._params.pop(name, None)
        if value is None:
            if default is _MISSING:
                raise JobError(f"{self._job_type}: missing parameter '{name}'", MISSING_FIELD)
            return default
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not accepts(value, kinds):
            raise JobError(f"{self._job_type}: parameter '{name}' must be {describe(kinds)}", INVALID_FIELD)
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.take(name, str, default)
        if value not in choices:
            raise JobError(f"{self._job_type}: parameter '{name}' must be one of {', '.join(choices)}",
                           INVALID_FIELD)
        return value

    def positive(self, name: str, default: float | None, high: float) -> float | None:
        """A number of seconds (say) greater than 0 and at most ``high`` (the
        default, from the daemon's config, is not checked here)."""
        value = self.take(name, float, default)
        if value is not default and not 0 < value <= high:
            raise JobError(f"{self._job_type}: parameter '{name}' must be greater than 0 and at most {high:g}",
                           INVALID_FIELD)
        return value

    def ranged(self, name: str, kind: type, default: Any, low: float, high: float) -> Any:
        """A number (``int`` or ``float``) in ``low..high``."""
        value = self.take(name, kind, default)
        if not low <= value <= high:
            raise JobError(f"{self._job_type}: parameter '{name}' must be {low:g}..{high:g}", INVALID_FIELD)
        return value

    def run_options(self, default_timeout: float | None, default_retries: int = 0,
                    default_delay: float = 0.0) -> dict:
        """The ``timeout``, ``max_retries`` and ``retry_delay`` every job type
        takes, in their documented ranges (see :data:`RUN_OPTIONS`)."""
        return {"timeout": self.positive("timeout", default_timeout, MAX_TIMEOUT),
                "max_retries": self.ranged("max_retries", int, default_retries, 0, MAX_RETRIES),
                "retry_delay": self.ranged("retry_delay", float, default_delay, 0.0, MAX_RETRY_DELAY)}

    def rest(self, names: Collection[str] | None, exclude: Collection[str] = ()) -> dict:
        """Take every parameter left that is in ``names`` (any, when None) and
        not in ``exclude``; :meth:`finish` refuses what stays."""
        taken = {name: value for name, value in self._params.items()
                 if (names is None or name in names) and name not in exclude}
        for name in taken:
            del self._params[name]
        return taken

    def finish(self) -> None:
        if self._params:
            unknown = ", ".join(sorted(self._params))
            raise JobError(f"{self._job_type}: unknown parameter(s): {unknown}", INVALID_FIELD)
