from __future__ import annotations

import itertools
import logging
import threading
import time

import pytest

from pineapple import errors
from pineapple.errors import JobError
from pineapple.jobs import FakeClock, Job, JobManager

from .helpers import WAIT, BlockingJob, FailJob, IntervalJob, ReturnJob


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def manager(clock):
    m = JobManager("test", clock=clock, workers=2, stop_grace=5)
    yield m
    m.shutdown(wait=False)


# ---------------------------------------------------------------- callbacks
def test_callbacks_run_in_order_and_are_isolated(manager, caplog):
    calls = []

    def first(job):
        calls.append(("first", job.was_successful))

    def broken(job):
        calls.append(("broken", job.state))
        raise ValueError("callback bug")

    def last(job):
        calls.append(("last", job.result))

    job = ReturnJob(7)
    with caplog.at_level(logging.ERROR, logger="test"):
        manager.wait(manager.execute_job(job, [first, broken, last]), WAIT)
    assert calls == [("first", True), ("broken", "running"), ("last", 7)]
    assert job.state == "succeeded" and job.error is None
    assert any("callback broken failed: callback bug" in line for line in job.log)
    assert "callback of job" in caplog.text


def test_callbacks_also_run_after_failure(manager):
    seen = []
    job = FailJob("disk on fire")
    manager.wait(manager.execute_job(job, [lambda j: seen.append((j.was_successful, j.error))]), WAIT)
    assert seen == [(False, "disk on fire")]
    assert (job.state, job.error_code) == ("failed", errors.JOB_FAILED)


def test_is_complete_only_after_callbacks(manager):
    in_callback, release = threading.Event(), threading.Event()

    def slow_callback(job):
        in_callback.set()
        assert release.wait(WAIT)

    job = ReturnJob("done")
    job_id = manager.execute_job(job, [slow_callback])
    assert in_callback.wait(WAIT)
    polled = manager.get_job(job_id)  # remove_if_complete=True must not remove it yet
    assert polled is job and not job.is_complete and job.state == "running"
    assert job.outcome == "succeeded" and job.result == "done"
    release.set()
    assert manager.wait(job_id, WAIT).is_complete and job.state == "succeeded"


# --------------------------------------------------------------- the pool
def test_shared_resource_serialises_while_others_run_beside():
    manager = JobManager(workers=2, max_finished=200)
    record, barrier = [], threading.Barrier(2)
    jobs = []
    for i in range(100):
        shared = i % 2 == 0
        # The first two unrelated jobs must meet: proof they ran at the same time.
        meet = barrier if i in (1, 3) else None
        jobs.append(IntervalJob(record, i, resource="opkg" if shared else None, barrier=meet))
    ids = [manager.execute_job(job) for job in jobs]
    for job_id in ids:
        assert manager.wait(job_id, WAIT).state == "succeeded"
    shared = sorted((r for r in record if r[1] == "opkg"), key=lambda r: r[2])
    assert [r[0] for r in shared] == list(range(0, 100, 2)), "shared jobs ran out of submission order"
    for before, after in zip(shared, shared[1:]):
        assert before[3] <= after[2], f"jobs {before[0]} and {after[0]} overlapped"
    overlaps = [(a[0], b[0]) for a, b in itertools.combinations(record, 2)
                if a[2] < b[3] and b[2] < a[3]]
    assert overlaps, "no two jobs ever ran at the same time"
    assert manager.thread_count <= 3  # two workers, plus the opkg lane's own thread
    manager.shutdown()


def test_queue_limit(clock):
    manager = JobManager(clock=clock, workers=1, max_queued=2)
    blocker = BlockingJob()
    manager.execute_job(blocker)
    assert blocker.started.wait(WAIT)
    manager.execute_job(ReturnJob())
    manager.execute_job(ReturnJob())
    with pytest.raises(JobError) as err:
        manager.execute_job(ReturnJob())
    assert err.value.code == errors.QUEUE_FULL
    blocker.release.set()
    manager.shutdown()


def test_held_jobs_count_against_the_queue_limit_until_they_leave(clock):
    manager = JobManager(clock=clock, workers=1, max_queued=2)
    blocker = BlockingJob()
    manager.execute_job(blocker)
    assert blocker.started.wait(WAIT)
    held = [manager.submit(ReturnJob(), hold=True).job_id for _ in range(2)]
    assert manager.waiting() == 2
    with pytest.raises(JobError) as err:
        manager.execute_job(ReturnJob())
    assert err.value.code == errors.QUEUE_FULL
    assert manager.cancel_job(held[0])  # a held job leaves: room for one
    assert manager.waiting() == 1
    manager.execute_job(ReturnJob())
    with pytest.raises(JobError):
        manager.execute_job(ReturnJob())
    assert manager.hold_job(manager.list_jobs("queued")[0].id)  # queued -> held: still one each
    assert manager.waiting() == 2
    assert manager.release_job(held[1])
    blocker.release.set()
    manager.shutdown()
    assert manager.waiting() == 0


def test_totals_count_each_outcome_once(clock):
    manager = JobManager(clock=clock, workers=1)
    blocker = BlockingJob()
    manager.execute_job(blocker)
    assert blocker.started.wait(WAIT)
    ok = manager.execute_job(ReturnJob())
    bad = manager.execute_job(FailJob(max_retries=2))
    cancelled = manager.execute_job(ReturnJob())
    manager.cancel_job(cancelled)
    left = manager.submit(ReturnJob(), hold=True).job_id
    assert manager.totals() == {"submitted": 5, "succeeded": 0, "failed": 0, "cancelled": 1, "interrupted": 0}
    blocker.release.set()
    manager.wait(ok, WAIT)
    manager.wait(bad, WAIT)
    manager.shutdown()
    assert manager.get_job(left, remove_if_complete=False).state == "interrupted"
    totals = manager.totals()
    assert totals == {"submitted": 5, "succeeded": 2, "failed": 1, "cancelled": 1, "interrupted": 1}
    assert totals["submitted"] == sum(v for k, v in totals.items() if k != "submitted")


def test_duplicates_and_restored_records_are_not_counted(tmp_path, clock):
    class Keyed(BlockingJob):
        def dedup_key(self):
            return ("same",)

    manager = JobManager(clock=clock, workers=1, state_dir=tmp_path)
    first = Keyed()
    manager.execute_job(first)
    assert manager.submit(Keyed()).duplicate
    assert manager.totals()["submitted"] == 1
    manager.shutdown(wait=False)
    again = JobManager(clock=clock, state_dir=tmp_path)  # the old record comes back interrupted
    assert again.totals() == dict.fromkeys(("submitted", "succeeded", "failed", "cancelled", "interrupted"), 0)
    again.shutdown()


# ------------------------------------------------------ timeouts and retries
def test_timeout_stops_the_job(manager, clock):
    job = BlockingJob(timeout=30)
    job_id = manager.execute_job(job)
    assert job.started.wait(WAIT)
    clock.advance(29)
    assert job.stop_calls == 0 and job.state == "running"
    clock.advance(1)
    done = manager.wait(job_id, WAIT)
    assert (done.state, done.error_code, done.error) == ("failed", "timeout", "timed out after 30s")
    assert job.stop_calls == 1


def test_timeout_closes_the_record_of_a_job_that_ignores_stop(manager, clock):
    job = BlockingJob(obey_stop=False, timeout=10)
    job_id = manager.execute_job(job)
    assert job.started.wait(WAIT)
    clock.advance(10)
    assert job.stop_calls == 1 and not job.is_complete
    clock.advance(5)  # stop_grace
    done = manager.wait(job_id, WAIT)
    assert done.state == "failed" and done.error_code == "timeout"
    assert "did not stop within 5s" in done.error
    job.release.set()  # the thread returns later; the record stays as it is
    manager.shutdown()
    assert done.state == "failed"


class Flaky(Job):
    def __init__(self, failures, **kw):
        super().__init__(**kw)
        self.failures = failures
        self.ran = threading.Semaphore(0)

    def do_work(self, logger):
        self.ran.release()
        if self.attempts <= self.failures:
            raise JobError(f"attempt {self.attempts} failed", "download_failed")
        return self.attempts


def test_retry_waits_its_delay_on_the_clock(manager, clock):
    job = Flaky(failures=2, max_retries=2, retry_delay=30)
    job_id = manager.execute_job(job)
    assert job.ran.acquire(timeout=WAIT)
    _wait_for(lambda: job.state == "queued" and job.attempts == 1)
    clock.advance(29)
    assert not job.ran.acquire(timeout=0.2), "retried before its delay"
    clock.advance(1)
    assert job.ran.acquire(timeout=WAIT)
    _wait_for(lambda: job.state == "queued" and job.attempts == 2)
    clock.advance(30)
    done = manager.wait(job_id, WAIT)
    assert (done.state, done.result, done.attempts) == ("succeeded", 3, 3)
    assert sum("retrying in 30s" in line for line in done.log) == 2


def test_retries_exhausted_keep_last_error(manager, clock):
    job = Flaky(failures=5, max_retries=1, retry_delay=0)
    done = manager.wait(manager.execute_job(job), WAIT)
    assert (done.state, done.attempts, done.error_code) == ("failed", 2, "download_failed")
    assert done.error == "attempt 2 failed"


def test_cancel_during_retry_wait(manager, clock):
    job = Flaky(failures=5, max_retries=3, retry_delay=60)
    job_id = manager.execute_job(job)
    _wait_for(lambda: job.state == "queued" and job.attempts == 1)
    assert manager.cancel_job(job_id)
    assert manager.wait(job_id, WAIT).state == "cancelled"
    clock.advance(120)
    assert job.attempts == 1


# ------------------------------------------------------------------- cancel
def test_cancel_running_and_queued(clock):
    manager = JobManager(clock=clock, workers=1)
    running, queued = BlockingJob(), ReturnJob()
    running_id, queued_id = manager.execute_job(running), manager.execute_job(queued)
    assert running.started.wait(WAIT)
    assert manager.cancel_job(queued_id)
    assert manager.get_job(queued_id, remove_if_complete=False).state == "cancelled"
    assert manager.cancel_job(running_id)
    done = manager.wait(running_id, WAIT)
    assert (done.state, done.error_code) == ("cancelled", "cancelled")
    assert manager.cancel_job(running_id) is False  # already finished
    assert manager.cancel_job("nope") is False
    manager.shutdown()


# ----------------------------------------------------------- get and remove
def test_get_job_removes_only_completed_jobs(manager):
    blocker = BlockingJob()
    blocker_id = manager.execute_job(blocker)
    assert blocker.started.wait(WAIT)
    assert manager.get_job(blocker_id) is blocker
    assert manager.get_job(blocker_id) is blocker, "a running job was removed"
    blocker.release.set()
    manager.wait(blocker_id, WAIT)
    assert manager.get_job(blocker_id, remove_if_complete=False) is blocker
    assert manager.get_job(blocker_id) is blocker
    assert manager.get_job(blocker_id) is None
    assert manager.get_job("unknown") is None


def test_remove_job(manager):
    assert manager.remove_job("unknown") is False
    done_id = manager.execute_job(ReturnJob())
    manager.wait(done_id, WAIT)
    assert manager.remove_job(done_id) is True and manager.get_job(done_id) is None
    blocker = BlockingJob()
    blocker_id = manager.execute_job(blocker)
    assert blocker.started.wait(WAIT)
    assert manager.remove_job(blocker_id) is True
    assert blocker.stop_calls == 1 and manager.get_job(blocker_id) is None


def test_wait_errors(manager):
    with pytest.raises(JobError) as err:
        manager.wait("missing")
    assert err.value.code == "unknown_job"
    blocker = BlockingJob()
    blocker_id = manager.execute_job(blocker)
    with pytest.raises(TimeoutError):
        manager.wait(blocker_id, timeout=0.05)
    blocker.release.set()


def test_duplicate_submission_answers_existing_id(manager):
    class Keyed(BlockingJob):
        def dedup_key(self):
            return ("install", "nmap")

    first = Keyed()
    sub = manager.submit(first)
    again = manager.submit(Keyed())
    assert again == (sub.job_id, True) and sub.duplicate is False
    first.release.set()
    manager.wait(sub.job_id, WAIT)
    assert manager.submit(Keyed()).duplicate is False


# ------------------------------------------------------------------ pruning
def test_prune_by_age(clock):
    manager = JobManager(clock=clock, retention=600)
    ids = [manager.execute_job(ReturnJob(i)) for i in range(3)]
    for job_id in ids:
        manager.wait(job_id, WAIT)
    clock.advance(599)
    assert all(manager.get_job(i, remove_if_complete=False) for i in ids)
    late = manager.execute_job(ReturnJob())
    manager.wait(late, WAIT)
    clock.advance(1)
    assert [manager.get_job(i, remove_if_complete=False) for i in ids] == [None] * 3
    assert manager.get_job(late, remove_if_complete=False) is not None
    clock.advance(599)
    assert manager.get_job(late, remove_if_complete=False) is None
    assert len(manager.timers) == 0, "a timer is left when nothing is to be pruned"
    manager.shutdown()


def test_prune_by_count_drops_oldest(clock):
    manager = JobManager(clock=clock, max_finished=5, workers=1)
    ids = []
    for i in range(8):
        ids.append(manager.execute_job(ReturnJob(i)))
        manager.wait(ids[-1], WAIT)
    kept = [job.result for job in manager.list_jobs()]
    assert kept == [7, 6, 5, 4, 3]
    manager.shutdown()


def test_prune_completed_jobs_keeps_active(manager):
    blocker = BlockingJob()
    blocker_id = manager.execute_job(blocker)
    done = [manager.execute_job(ReturnJob()) for _ in range(3)]
    for job_id in done:
        manager.wait(job_id, WAIT)
    assert manager.prune_completed_jobs() == 3
    assert [job.id for job in manager.list_jobs()] == [blocker_id]
    blocker.release.set()


# ---------------------------------------------------------------- listeners
def test_events_in_order_and_slow_listener_never_stalls_jobs(manager):
    gate, events = threading.Event(), []

    def slow(event):
        gate.wait(WAIT)
        events.append(event)

    def broken(event):
        raise RuntimeError("listener bug")

    manager.add_listener(slow)
    manager.add_listener(broken)

    class Reporting(Job):
        def do_work(self, logger):
            self.set_progress(0.5, "half")
            logger.info("hello")
            return 1

    job_id = manager.execute_job(Reporting())
    assert manager.wait(job_id, WAIT).state == "succeeded"  # while the listener is stuck
    gate.set()
    assert manager.events.flush(WAIT)
    kinds = [(e.kind, e.data["state"] if e.kind == "state" else e.data) for e in events]
    assert kinds[:3] == [("state", "queued"), ("state", "running"), ("progress", (0.5, "half"))]
    assert ("log", "hello") in kinds and kinds[-1] == ("state", "succeeded")


# ----------------------------------------------------------------- shutdown
def test_shutdown_interrupts_queued_and_cancels_overdue(clock):
    manager = JobManager(clock=clock, workers=1, stop_grace=1)
    running, queued = BlockingJob(), ReturnJob()
    manager.execute_job(running)
    manager.execute_job(queued)
    assert running.started.wait(WAIT)
    manager.shutdown(wait=True, timeout=0.05)
    assert (queued.state, queued.error_code) == ("interrupted", "interrupted")
    assert (running.state, running.error_code) == ("cancelled", "cancelled")
    with pytest.raises(JobError) as err:
        manager.execute_job(ReturnJob())
    assert err.value.code == "shutting_down"


def test_pineapple_module_compat_poll_job():
    class FakeModule:  # the two registration hooks a Pineapple Module offers
        def __init__(self):
            self.actions, self.shutdown = {}, []

        def register_action_handler(self, action, handler):
            self.actions[action] = handler

        def register_shutdown_handler(self, handler):
            self.shutdown.append(handler)

    module = FakeModule()
    manager = JobManager("compat", logging.ERROR, module)
    job_id = manager.execute_job(ReturnJob({"ok": 1}))
    manager.wait(job_id, WAIT)

    class Request:
        pass

    request = Request()
    request.job_id, request.remove_if_complete = job_id, True
    assert module.actions["poll_job"](request) == {"is_complete": True, "result": {"ok": 1}, "job_error": None}
    gone = module.actions["poll_job"](request)  # already removed by the first poll
    assert gone["is_complete"] is True and "no job with id" in gone["job_error"]
    module.shutdown[0](15)
    with pytest.raises(JobError):
        manager.execute_job(ReturnJob())


def _wait_for(predicate, timeout=WAIT):
    """Wait for another thread to reach a state (real time, bounded)."""
    done = threading.Event()
    deadline = threading.Timer(timeout, done.set)
    deadline.start()
    try:
        while not predicate():
            assert not done.wait(0.001), "condition not reached in time"
    finally:
        deadline.cancel()


# ------------------------------------------------------- hold and release
def test_held_jobs_wait_for_release(clock):
    manager = JobManager(clock=clock, workers=1)
    first = manager.submit(ReturnJob("a"), hold=True)
    second = manager.submit(ReturnJob("b"), hold=True)
    assert manager.get_job(first.job_id, remove_if_complete=False).state == "held"
    assert manager.release_job(first.job_id) and manager.release_job(second.job_id)
    assert manager.release_job(first.job_id) is False, "released twice"
    assert manager.wait(first.job_id, WAIT).result == "a"
    assert manager.wait(second.job_id, WAIT).result == "b"
    manager.shutdown()


def test_hold_a_queued_job_and_cancel_a_held_one(clock):
    manager = JobManager(clock=clock, workers=1)
    blocker = BlockingJob()
    manager.execute_job(blocker)
    assert blocker.started.wait(WAIT)
    queued = manager.execute_job(ReturnJob())
    assert manager.hold_job(queued) is True
    assert manager.hold_job(blocker.id) is False, "a running job cannot be held"
    blocker.release.set()
    manager.wait(blocker.id, WAIT)
    assert manager.get_job(queued, remove_if_complete=False).state == "held"  # it did not run
    assert manager.cancel_job(queued)
    assert manager.wait(queued, WAIT).state == "cancelled"
    manager.shutdown()


def test_shutdown_interrupts_held_jobs(clock):
    manager = JobManager(clock=clock)
    held = manager.submit(ReturnJob(), hold=True).job_id
    manager.shutdown()
    assert manager.get_job(held, remove_if_complete=False).state == "interrupted"


# ----------------------------------------------------------------- restart
def test_restart_links_parent_and_child(manager):
    first = manager.execute_job(FailJob("flaky network", code="download_failed"))
    manager.wait(first, WAIT)
    again = manager.restart_job(first, lambda old: ReturnJob("second try"))
    assert again.duplicate is False and again.job_id != first
    child = manager.wait(again.job_id, WAIT)
    parent = manager.get_job(first, remove_if_complete=False)
    assert (parent.child_id, child.parent_id) == (again.job_id, first)
    assert parent.to_dict()["child_id"] == again.job_id


def test_restart_refuses_active_and_unknown_jobs(manager):
    blocker = BlockingJob()
    blocker_id = manager.execute_job(blocker)
    with pytest.raises(JobError) as err:
        manager.restart_job(blocker_id, lambda old: ReturnJob())
    assert err.value.code == "job_active"
    with pytest.raises(JobError) as err:
        manager.restart_job("nope", lambda old: ReturnJob())
    assert err.value.code == "unknown_job"
    blocker.release.set()


# --------------------------------------------------------------- log pages
def test_log_pages_by_absolute_line_number(manager):
    class Chatty(Job):
        def do_work(self, logger):
            for i in range(30):
                logger.info("line %d", i)

    job = Chatty(log_lines=10)
    manager.wait(manager.execute_job(job), WAIT)
    page = job.log_page(offset=25, limit=3)
    assert page["lines"] == ["line 25", "line 26", "line 27"] and page["next_offset"] == 28
    assert page["total"] == 30 and page["truncated"] is False
    old = job.log_page(offset=0, limit=2)
    assert old["offset"] == 20 and old["lines"] == ["line 20", "line 21"] and old["truncated"] is True
    assert job.log_page(offset=30)["lines"] == []


# -------------------------------------------------------------------- hooks
def test_success_and_failure_hooks_never_change_the_outcome(manager):
    seen = []

    def broken_hook(job):
        raise RuntimeError("hook bug")

    ok = ReturnJob(1, on_success=[broken_hook, lambda job: seen.append(("ok", job.id))],
                   on_failure=[lambda job: seen.append(("not expected", job.id))])
    bad = FailJob("boom", on_failure=[lambda job: seen.append(("failed", job.error))])
    ok_id, bad_id = manager.execute_job(ok), manager.execute_job(bad)
    assert manager.wait(ok_id, WAIT).state == "succeeded"
    assert manager.wait(bad_id, WAIT).state == "failed"
    assert sorted(seen) == sorted([("ok", ok_id), ("failed", "boom")])
    assert any("hook broken_hook failed: hook bug" in line for line in ok.log)


# ------------------------------------------------------- limits changed live
def test_set_limits_grows_and_shrinks_the_pool_while_jobs_run(clock):
    manager = JobManager("limits", clock=clock, workers=1, stop_grace=5)
    try:
        jobs = [BlockingJob() for _ in range(3)]
        for job in jobs:
            manager.submit(job)
        assert jobs[0].started.wait(WAIT) and not jobs[1].started.is_set()
        manager.set_limits(workers=3)  # the waiting jobs start at once
        assert jobs[1].started.wait(WAIT) and jobs[2].started.wait(WAIT)
        manager.set_limits(workers=1)  # running jobs are not touched
        assert manager.workers == 1 and manager.thread_count == 3
        for job in jobs:
            job.release.set()
        for job in jobs:
            assert manager.wait(job.id, timeout=WAIT).state == "succeeded"
        deadline = time.monotonic() + WAIT
        while manager.thread_count > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert manager.thread_count == 1  # the surplus threads exited after their jobs
        later = ReturnJob(7)
        manager.submit(later)
        assert manager.wait(later.id, timeout=WAIT).state == "succeeded"
    finally:
        manager.shutdown(wait=False)


def test_set_limits_prunes_by_the_new_retention_and_count(clock):
    manager = JobManager("limits", clock=clock, workers=2, retention=600, max_finished=10)
    try:
        ids = []
        for value in range(5):
            job = ReturnJob(value)
            manager.submit(job)
            manager.wait(job.id, timeout=WAIT)
            ids.append(job.id)
        manager.set_limits(max_finished=3)
        assert {job.id for job in manager.list_jobs()} == set(ids[-3:])  # the oldest went first
        clock.advance(120)
        manager.set_limits(retention=60)  # older than the new retention: gone now
        assert manager.list_jobs() == []
        manager.set_limits(max_queued=1)
        assert manager.max_queued == 1 and manager.retention == 60 and manager.max_finished == 3
    finally:
        manager.shutdown(wait=False)
