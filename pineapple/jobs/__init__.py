"""The in-process job engine.

    from pineapple.jobs import Job, JobManager

    class Hello(Job[str]):
        def do_work(self, logger):
            logger.info("working")
            return "hello"

    manager = JobManager("example")
    job_id = manager.execute_job(Hello())
    print(manager.wait(job_id).result)
"""
from __future__ import annotations

from ..errors import JobError
from .clock import FakeClock, SystemClock
from .events import JobEvent
from .function import FunctionJob
from .job import Job, RecordedJob
from .manager import JobManager, Submission
from .state import (
    ACTIVE_STATES,
    CANCELLED,
    FAILED,
    HELD,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    TERMINAL_STATES,
    Progress,
)

__all__ = [
    "Job", "FunctionJob", "JobManager", "JobError", "JobEvent", "RecordedJob", "Submission", "Progress",
    "SystemClock", "FakeClock",
    "QUEUED", "HELD", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "INTERRUPTED",
    "ACTIVE_STATES", "TERMINAL_STATES",
]
