"""``FunctionJob``: a plain function run as a job.

    def backup(job, path="/etc/config", keep=3):
        job.logger.info("backing up %s", path)
        job.set_progress(0.5, "copying")
        if job.stop_requested:          # cancel, timeout or shutdown
            return {"stopped": True}
        return {"files": 12}

    manager.execute_job(FunctionJob(backup, {"path": "/etc"}, job_type="backup"))

The function is called as ``function(job, **params)`` on a worker thread;
what it returns is the job's result, what it raises fails the job (a
:class:`~pineapple.errors.JobError` with its own code). ``job.logger``
writes to the job's log. A function cannot be interrupted: it sees a cancel
through ``job.stop_requested``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .job import Job


class FunctionJob(Job[Any]):
    """Runs ``function(job, **params)``; ``params`` are kept for restart."""

    __slots__ = ("function", "_params", "logger")

    def __init__(self, function: Callable[..., Any], params: dict | None = None, job_type: str = "",
                 **options: Any) -> None:
        super().__init__(**options)
        self.function = function
        self._params = dict(params or {})
        self.logger: logging.Logger | None = None  # the run's logger, while it runs
        if job_type:
            self.job_type = job_type

    def params(self) -> dict:
        return dict(self._params)

    def do_work(self, logger: logging.Logger) -> Any:
        self.logger = logger
        return self.function(self, **self._params)
