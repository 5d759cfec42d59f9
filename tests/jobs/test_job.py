from __future__ import annotations

import json
import logging
import sys

from pineapple.jobs import Job, JobManager, Progress, RecordedJob
from pineapple.jobs.job import JobLogger, jsonable

from .helpers import WAIT, ReturnJob


class Chatty(Job):
    def do_work(self, logger):
        for i in range(500):
            logger.info("line %d", i)
        logger.warning("careful")
        return {"set": {1}, "obj": object(), "nan": float("nan")}


def test_defaults_match_the_pineapple_library():
    job = Chatty()
    assert (job.is_complete, job.result, job.error) == (False, None, None)
    assert job.was_successful is False
    assert job.state == "queued" and job.progress == Progress(None, "")
    assert job.type == "Chatty"


def test_log_tail_is_bounded_and_record_is_json_safe():
    manager = JobManager()
    job = Chatty(log_lines=50)
    manager.wait(manager.execute_job(job), WAIT)
    assert len(job.log) == 50 and job.log_total == 501
    assert job.log[-1] == "WARNING: careful"
    record = job.to_dict()
    json.dumps(record, allow_nan=False)  # must not raise
    assert record["log"][0] == "line 451"
    assert record["result"]["set"] == [1] and record["result"]["nan"] == "nan"
    manager.shutdown()


def test_progress_is_clamped_and_keeps_message():
    job = Chatty()
    job.set_progress(1.7, "downloading")
    job.set_progress(-1)
    assert job.progress == Progress(0.0, "downloading")


def test_options_from_class_attributes_and_keywords():
    class Opkg(Job):
        resource = "opkg"
        timeout = 60

    assert Opkg().resource == "opkg" and Opkg().timeout == 60
    assert Opkg(timeout=5, max_retries=2).timeout == 5
    assert Opkg(max_retries=2).max_retries == 2 and Job().max_retries == 0


def chatty_logger(name: str, level: int) -> tuple[Job, JobLogger]:
    """A job (id ``abc``) and its logger, forwarding to ``name`` from ``level`` up."""
    forward = logging.getLogger(name)
    forward.setLevel(level)
    job = Chatty()
    job.id = "abc"
    return job, JobLogger(job, forward)


def test_job_logger_forwards_only_enabled_levels(caplog):
    job, logger = chatty_logger("pineapple.test.forward", logging.ERROR)
    with caplog.at_level(logging.ERROR, logger="pineapple.test.forward"):
        logger.info("quiet")
        logger.error("loud")
    assert list(job.log) == ["quiet", "ERROR: loud"]
    assert [r.getMessage() for r in caplog.records] == ["[abc] loud"]
    assert "pineapple.test.forward.job" not in logging.Logger.manager.loggerDict


def test_job_logger_lines_and_forwarded_records_name_the_caller(caplog):
    """The tail gets the same lines whether a record was built or not; a
    forwarded record names the line that logged, on every Python version."""
    job, logger = chatty_logger("pineapple.test.caller", logging.WARNING)
    with caplog.at_level(logging.WARNING, logger="pineapple.test.caller"):
        logger.info("%d packages", 3)
        logger.log(logging.DEBUG, "plain %s", "text")
        logger.warning("careful %s", "now"); line = sys._getframe().f_lineno  # noqa: E702
        try:
            raise ValueError("bad")
        except ValueError:
            logger.exception("failed")
    assert list(job.log) == ["3 packages", "plain text", "WARNING: careful now", "ERROR: failed: ValueError: bad"]
    warning = caplog.records[0]
    assert (warning.filename, warning.lineno, warning.funcName) == (
        "test_job.py", line, "test_job_logger_lines_and_forwarded_records_name_the_caller")


def test_recorded_job_round_trip():
    manager = JobManager()
    job = Chatty()
    manager.wait(manager.execute_job(job), WAIT)
    again = RecordedJob(json.loads(json.dumps(job.to_dict())))
    assert again.to_dict() == job.to_dict()
    manager.shutdown()


def test_jsonable_handles_nesting():
    assert jsonable({1: (1, 2), "x": [None, True, 1.5]}) == {"1": [1, 2], "x": [None, True, 1.5]}


class KeepsLogger(Job):
    """Keeps its logger, as the opkg jobs do (for their stop and progress paths)."""

    def do_work(self, logger):
        self.logger = logger
        logger.info("kept")
        return "ok"


def test_a_job_that_keeps_its_logger_is_freed_without_the_cycle_collector():
    import gc
    import weakref

    manager = JobManager(max_finished=1)
    job = KeepsLogger()
    manager.wait(manager.execute_job(job), WAIT)
    assert list(job.log) == ["kept"]
    gone = weakref.ref(job)
    del job
    gc.disable()  # a reference cycle would now keep the record alive
    try:
        manager.wait(manager.execute_job(ReturnJob()), WAIT)  # max_finished=1 drops the first
        manager.events.flush()
        assert gone() is None
    finally:
        gc.enable()
        manager.shutdown()


def test_job_logger_after_the_job_is_gone_drops_lines():
    job = Chatty()
    logger = JobLogger(job, logging.getLogger("pineapple.test.gone"))
    del job
    logger.info("nobody listens")  # must not raise
