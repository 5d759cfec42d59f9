"""``JobRunner`` and ``JobManager.jobs``: the view of running jobs that
Hak5's module backends read.

In Hak5's library every job had a thread object (a ``JobRunner``) with
``.job`` and ``.running``, kept in the dict ``JobManager.jobs``. Here jobs
run on the manager's bounded pool; :attr:`JobManager.jobs` is a live,
insertion-ordered mapping of job id to a :class:`JobRunner` view, so that
``list(manager.jobs.keys())[-1]`` (the last submitted job),
``manager.jobs[job_id].job``, ``manager.jobs.get(job_id)``, ``for job_id,
runner in manager.jobs.items()`` and ``filter(lambda r: r.running,
manager.jobs.values())`` work unchanged. ``keys()``, ``values()`` and
``items()`` are snapshots (lists): iterating one never fails because a job
was pruned meanwhile.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from .job import Job
from .state import RUNNING

if TYPE_CHECKING:
    from .manager import JobManager


class JobRunner:
    """One job as Hak5's ``JobRunner`` showed it: ``job``, ``running``,
    ``logger`` and ``stop()``. A view: it runs nothing itself (the
    manager's pool does). It takes Hak5's arguments ``(job, logger,
    callbacks)``, but :meth:`start` and :meth:`run` refuse with a clear
    error: :meth:`JobManager.execute_job` runs a job."""

    __slots__ = ("job", "_logger", "callbacks", "_manager")

    def __init__(self, job: Job, logger: logging.Logger | None = None, callbacks: Any = None, *,
                 manager: JobManager | None = None) -> None:
        self.job = job
        self._logger = logger
        self.callbacks = list(callbacks or ())
        self._manager = manager

    def start(self) -> None:
        raise RuntimeError("a JobRunner does not run jobs here: submit the job with "
                           "JobManager.execute_job(job, callbacks), which runs it on a bounded pool")

    run = start

    @property
    def running(self) -> bool:
        """True from the start of ``do_work`` until after the callbacks (as Hak5's)."""
        return self.job.state == RUNNING and not self.job.is_complete

    def is_alive(self) -> bool:
        """The thread API's name for :attr:`running`."""
        return self.running

    @property
    def logger(self) -> logging.Logger:
        if self._logger is not None:
            return self._logger
        return self._manager.logger if self._manager is not None else logging.getLogger("pineapple.jobs")

    def stop(self) -> bool:
        """Ask the job to stop (see :meth:`JobManager.stop_job`)."""
        return self._manager.stop_job(job=self.job) if self._manager is not None else False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobRunner) and other.job is self.job

    def __hash__(self) -> int:
        return id(self.job)

    def __repr__(self) -> str:
        return f"<JobRunner {self.job!r} running={self.running}>"


class RunnerMap(MutableMapping):
    """``JobManager.jobs``: job id -> :class:`JobRunner`, in submission order,
    always current. ``del jobs[job_id]`` removes the job (cancelling it if
    it is still active); assigning is refused (submit with ``execute_job``)."""

    def __init__(self, manager: JobManager) -> None:
        self._manager = manager

    def __getitem__(self, job_id: str) -> JobRunner:
        return JobRunner(self._manager._jobs[job_id], manager=self._manager)

    def __setitem__(self, job_id: str, value: Any) -> None:
        raise TypeError("JobManager.jobs is read-only: submit a job with execute_job(job)")

    def __delitem__(self, job_id: str) -> None:
        if not self._manager.remove_job(job_id):
            raise KeyError(job_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._manager._jobs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._manager._jobs

    def keys(self) -> list[str]:  # type: ignore[override]
        with self._manager._lock:
            return list(self._manager._jobs)

    def values(self) -> list[JobRunner]:  # type: ignore[override]
        return [runner for _, runner in self.items()]

    def items(self) -> list[tuple[str, JobRunner]]:  # type: ignore[override]
        with self._manager._lock:
            jobs = list(self._manager._jobs.items())
        return [(job_id, JobRunner(job, manager=self._manager)) for job_id, job in jobs]

    def __repr__(self) -> str:
        return f"RunnerMap({self.keys()!r})"
