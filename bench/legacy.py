"""A stand-in for the JobManager module authors use today (a thread per job,
no queue, records kept until someone calls get_job), written from the
behaviour described in shared/reference/hak5-pineapple.md. Only the
benchmarks use it, as the baseline measured in the same run."""
from __future__ import annotations

import threading
import uuid


class LegacyJobManager:
    def __init__(self) -> None:
        self.jobs: dict[str, object] = {}

    def execute_job(self, job, callbacks=None) -> str:
        job_id = str(uuid.uuid4())
        self.jobs[job_id] = job
        threading.Thread(target=self._run, args=(job, callbacks or []), daemon=True).start()
        return job_id

    def get_job(self, job_id, remove_if_complete=True):
        job = self.jobs.get(job_id)
        if job is not None and remove_if_complete and job.is_complete:
            del self.jobs[job_id]
        return job

    @staticmethod
    def _run(job, callbacks) -> None:
        try:
            job.result = job.do_work(None)
        except Exception as exc:
            job.error = str(exc)
        job.is_complete = True
        for callback in callbacks:
            callback(job)
