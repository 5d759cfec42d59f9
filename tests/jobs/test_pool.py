"""The worker pool survives whatever a run does."""
import threading

import pytest

from pineapple.jobs import Job, JobManager
from pineapple.workers import WorkerPool

from .helpers import WAIT, ReturnJob


class Marker(Job):
    def __init__(self, name):
        super().__init__()
        self.name = name


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the worker's death is the point
def test_a_worker_killed_by_its_run_is_replaced():
    ran, done, dead = [], threading.Event(), []

    def run(job):
        if job.name == "fatal":
            dead.append(threading.current_thread())
            raise SystemExit("something run() could not catch")
        ran.append(job.name)
        if job.name == "last":
            done.set()

    pool = WorkerPool(run, size=1)
    pool.submit(Marker("fatal"))
    pool.submit(Marker("next"))
    pool.submit(Marker("last"))
    assert done.wait(WAIT), "the jobs behind the fatal one never ran"
    assert ran == ["next", "last"] and pool.thread_count <= 1
    dead[0].join(WAIT)  # its end is reported (and ignored, see the mark) within this test
    assert not dead[0].is_alive()
    pool.close()


def test_a_run_that_raises_keeps_its_worker():
    ran, done = [], threading.Event()

    def run(job):
        if job.name == "bug":
            raise RuntimeError("a bug")
        ran.append(threading.current_thread().name)
        done.set()

    pool = WorkerPool(run, size=1)
    pool.submit(Marker("bug"))
    pool.submit(Marker("fine"))
    assert done.wait(WAIT)
    assert ran == ["pineapple-worker-1"]  # the same thread carried on
    pool.close()


def test_sys_exit_in_a_job_fails_the_job_not_the_worker():
    class Exits(Job):
        def do_work(self, logger):
            raise SystemExit(3)

    manager = JobManager(workers=1)
    job = manager.wait(manager.execute_job(Exits()), WAIT)
    assert (job.state, job.error_code) == ("failed", "job_failed")
    assert manager.wait(manager.execute_job(ReturnJob(1)), WAIT).result == 1
    assert manager.thread_count == 1
    manager.shutdown()


def test_an_engine_error_while_running_ends_the_job_with_internal_error():
    class BadTimeout(ReturnJob):
        timeout = "soon"  # a bad option: arming the timeout raises inside the engine

    manager = JobManager(workers=1)
    job = manager.wait(manager.execute_job(BadTimeout(1)), WAIT)
    assert (job.state, job.error_code, job.is_complete) == ("failed", "internal_error", True)
    assert "TypeError" in job.error
    assert manager.wait(manager.execute_job(ReturnJob(2)), WAIT).result == 2
    manager.shutdown()


def test_offer_bounds_the_tasks_waiting_for_a_thread():
    """Plain calls (the module framework's handlers) on the same pool: two
    run, two more may wait, the next offer is refused; close() hands back
    the ones that never started and ``busy`` counts the running ones."""
    from pineapple.workers import Task, run_task

    release, started, ran = threading.Event(), threading.Semaphore(0), []

    def handler(name):
        started.release()
        release.wait(WAIT)
        ran.append(name)

    pool = WorkerPool(run_task, size=2, name="handler", max_pending=2)
    assert pool.offer(Task(handler, "a")) and pool.offer(Task(handler, "b"))
    assert started.acquire(timeout=WAIT) and started.acquire(timeout=WAIT)
    assert pool.busy == 2
    assert pool.offer(Task(handler, "c")) and pool.offer(Task(handler, "d"))
    assert not pool.offer(Task(handler, "e"))  # two already wait
    never_started = pool.close()
    assert [task.args for task in never_started] == [("c",), ("d",)]
    assert not pool.offer(Task(handler, "f"))  # closed
    release.set()
    pool.join(WAIT)
    assert sorted(ran) == ["a", "b"] and pool.busy == 0
