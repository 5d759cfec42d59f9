"""Hak5's JobManager surface: ``jobs`` (live runners with ``.job`` and
``.running``), ``name``, ``stop_job``, no queue limit by default, and long
jobs that never keep a resource job waiting."""
from __future__ import annotations

import threading

import pytest

from pineapple import errors
from pineapple.jobs import Job, JobManager
from pineapple.jobs.job_manager import JobManager as JobManagerByHak5Path
from pineapple.jobs.job_runner import JobRunner
from tests.jobs.helpers import WAIT, BlockingJob, ReturnJob


class Forever(Job):
    """A capture that runs until stopped (tcpdump style)."""

    def __init__(self):
        super().__init__()
        self.started, self._stop = threading.Event(), threading.Event()

    def do_work(self, logger):
        self.started.set()
        self._stop.wait()  # never ends by itself
        return True

    def stop(self):
        self._stop.set()


class Exclusive(ReturnJob):
    resource = "opkg"


def test_the_hak5_import_path_is_the_same_class():
    assert JobManagerByHak5Path is JobManager


def test_jobs_is_a_live_ordered_mapping_of_runners():
    manager = JobManager("scanner", workers=2)
    assert manager.name == "scanner" and len(manager.jobs) == 0
    blocking = BlockingJob()
    first = manager.execute_job(blocking)
    assert blocking.started.wait(WAIT)
    done = manager.execute_job(ReturnJob("x"))
    manager.wait(done, WAIT)
    jobs = manager.jobs
    assert list(jobs.keys()) == [first, done] and list(jobs.keys())[-1] == done
    runner = jobs[first]
    assert isinstance(runner, JobRunner) and runner.job is blocking and runner.running is True
    assert jobs.get(done).job.result == "x" and jobs[done].running is False
    assert [r.job for r in filter(lambda r: r.running is True, jobs.values())] == [blocking]
    assert [(job_id, r.job) for job_id, r in jobs.items()] == [(first, blocking), (done, manager.get_job(done, False))]
    assert jobs.get("nope") is None and "nope" not in jobs and first in jobs
    with pytest.raises(TypeError):
        jobs["x"] = runner
    del jobs[done]  # live: the manager forgot it
    assert manager.get_job(done) is None and list(manager.jobs) == [first]
    with pytest.raises(KeyError):
        del jobs[done]
    blocking.release.set()
    manager.wait(first, WAIT)
    assert runner.running is False
    manager.shutdown()


def test_snapshots_survive_pruning_while_iterating():
    manager = JobManager("prune", workers=1)
    ids = [manager.execute_job(ReturnJob(i)) for i in range(5)]
    for job_id in ids:
        manager.wait(job_id, WAIT)
    seen = []
    for _job_id, runner in manager.jobs.items():
        manager.prune_completed_jobs()  # the dict shrinks under the loop
        seen.append(runner.job.result)
    assert seen == [0, 1, 2, 3, 4] and len(manager.jobs) == 0
    manager.shutdown()


def test_stop_job_by_job_or_id():
    manager = JobManager("stopper", workers=2)
    a, b = Forever(), Forever()
    a_id, b_id = manager.execute_job(a), manager.execute_job(b)
    assert a.started.wait(WAIT) and b.started.wait(WAIT)
    assert manager.stop_job(job_id=a_id) is True
    assert manager.wait(a_id, WAIT).state == "cancelled"
    assert manager.jobs[b_id].stop() is True  # the runner's stop is the manager's
    assert manager.wait(b_id, WAIT).state == "cancelled"
    assert manager.stop_job(job=a) is False  # finished: left alone
    assert manager.stop_job(job_id="unknown") is False
    with pytest.raises(ValueError, match="job or a job_id"):
        manager.stop_job()
    manager.shutdown()


def test_two_endless_jobs_never_keep_a_resource_job_waiting():
    """Hak5 starts every job at once; our general lane is bounded (here: 2
    threads, both taken by jobs that never end), yet the opkg job runs."""
    manager = JobManager("captures", workers=2)
    endless = [Forever(), Forever()]
    for job in endless:
        manager.execute_job(job)
    assert all(job.started.wait(WAIT) for job in endless)
    opkg_ids = [manager.execute_job(Exclusive(i)) for i in range(3)]  # one after another, in order
    assert [manager.wait(job_id, WAIT).result for job_id in opkg_ids] == [0, 1, 2]
    assert manager.thread_count <= 3  # two general threads plus the opkg lane's one
    queued = manager.execute_job(ReturnJob("third"))  # a third general job waits for a general thread
    assert manager.get_job(queued, False).state == "queued"
    endless[0].stop()
    assert manager.wait(queued, WAIT).result == "third"
    manager.shutdown(wait=False)


def test_execute_job_never_refuses_by_default():
    manager = JobManager("burst", workers=2)
    ids = [manager.execute_job(ReturnJob(i)) for i in range(2000)]
    assert len(set(ids)) == 2000
    with manager._changed:
        assert manager._changed.wait_for(lambda: manager.totals()["succeeded"] == 2000,
                                         WAIT * 6)
    assert manager.totals()["submitted"] == 2000 and len(manager.jobs) <= 50  # finished jobs pruned
    limited = JobManager("limited", workers=1, max_queued=1)
    blocker = BlockingJob()
    limited.execute_job(blocker)
    assert blocker.started.wait(WAIT)
    limited.execute_job(ReturnJob())
    with pytest.raises(errors.JobError) as refused:  # a limit only where one was set
        limited.execute_job(ReturnJob())
    assert refused.value.code == errors.QUEUE_FULL
    blocker.release.set()
    manager.shutdown()
    limited.shutdown()


class SetsError(Job):
    """mdk4 style: report failure by setting self.error and returning."""

    def do_work(self, logger):
        self.error = "Error starting monitor mode for input interface."
        return False


def test_error_set_and_returned_is_a_failure_and_success_has_null_error():
    manager = JobManager("mdk4ish")
    failed = manager.wait(manager.execute_job(SetsError()), WAIT)
    assert failed.state == "failed" and not failed.was_successful and failed.result is False
    assert failed.error == "Error starting monitor mode for input interface."
    ok = manager.wait(manager.execute_job(ReturnJob(True)), WAIT)
    assert ok.was_successful and ok.error is None and ok.summary()["job_error"] is None
    manager.shutdown()


def test_a_runner_built_by_hand_says_how_to_run_a_job():
    import logging

    logger = logging.getLogger("by-hand")
    runner = JobRunner(ReturnJob(1), logger, callbacks=[print])
    assert runner.logger is logger and runner.running is False and runner.stop() is False
    with pytest.raises(RuntimeError, match="execute_job"):
        runner.start()
