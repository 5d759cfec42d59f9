"""FunctionJob: a plain function as a job."""
from __future__ import annotations

from pineapple.errors import JobError
from pineapple.jobs import FunctionJob, JobManager

from .helpers import WAIT


def add(job, a, b=2):
    job.logger.info("adding %s and %s", a, b)
    job.set_progress(0.5, "half way")
    return a + b


def refuse(job):
    raise JobError("no space", "insufficient_space")


def test_the_function_gets_the_job_and_its_params():
    manager = JobManager()
    job = FunctionJob(add, {"a": 1}, job_type="add", timeout=5)
    done = manager.wait(manager.execute_job(job), WAIT)
    assert (done.state, done.result, done.type) == ("succeeded", 3, "add")
    assert list(done.log) == ["adding 1 and 2"] and done.timeout == 5
    assert done.params() == {"a": 1} and done.to_dict()["params"] == {"a": 1}
    manager.shutdown()


def test_what_the_function_raises_fails_the_job():
    manager = JobManager()
    done = manager.wait(manager.execute_job(FunctionJob(refuse)), WAIT)
    assert (done.state, done.error_code, done.error) == ("failed", "insufficient_space", "no space")
    assert done.type == "FunctionJob"
    manager.shutdown()
