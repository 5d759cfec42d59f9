"""Intents: what a job is about to change outside the process, written to
the journal before it does it, and read back after a crash."""
import json
import threading
import time

from pineapple.jobs import FakeClock, Job, JobManager
from pineapple.jobs.store import JOURNAL_NAME

from .helpers import WAIT, FlakyDisk


class Installs(Job):
    """Saves an intent, then blocks until released (the "opkg run")."""

    def __init__(self, obey_stop=True, **kw):
        super().__init__(**kw)
        self.saved = None
        self.inside = threading.Event()
        self.release = threading.Event()
        self.obey_stop = obey_stop

    def do_work(self, logger):
        self.saved = self.save_intent({"op": "install", "packages": ["nmap"]})
        self.inside.set()
        assert self.release.wait(WAIT)
        return "done"

    def stop(self):
        if self.obey_stop:
            self.release.set()


def last_record(state_dir, job_id):
    lines = [json.loads(line) for line in (state_dir / JOURNAL_NAME).read_text().splitlines()]
    return [r for r in lines if r.get("job_id") == job_id][-1]


def crash(manager):
    """What a kill -9 leaves: the journal as written, the lock let go."""
    manager._journal.close()


def test_an_intent_is_on_disk_before_the_work_goes_on(tmp_path):
    manager = JobManager(state_dir=tmp_path)
    job = Installs()
    job_id = manager.execute_job(job)
    assert job.inside.wait(WAIT) and job.saved is True
    assert last_record(tmp_path, job_id)["intent"] == {"op": "install", "packages": ["nmap"]}
    crash(manager)
    after = JobManager(state_dir=tmp_path)
    [pending] = after.pending_recoveries()
    intent = {"op": "install", "packages": ["nmap"]}
    assert (pending.id, pending.state, pending.intent) == (job_id, "interrupted", intent)
    after.record_recovery(job_id, {"removed": ["nmap"]}, "recovery: removed nmap (unpacked)")
    answer = after.get_job(job_id, False)
    assert answer.result == {"recovery": {"removed": ["nmap"]}}
    assert answer.error.endswith("\nrecovery: removed nmap (unpacked)") and answer.error.startswith("interrupted")
    assert answer.log[-1] == "recovery: removed nmap (unpacked)"
    after.shutdown()
    again = JobManager(state_dir=tmp_path)
    assert again.pending_recoveries() == []  # recovery runs once
    assert again.get_job(job_id, False).result == {"recovery": {"removed": ["nmap"]}}
    again.shutdown()
    job.release.set()


def test_an_intent_ends_when_do_work_returns(tmp_path):
    manager = JobManager(state_dir=tmp_path)
    job = Installs()
    job_id = manager.execute_job(job)
    assert job.inside.wait(WAIT)
    job.release.set()
    manager.wait(job_id, WAIT)
    assert last_record(tmp_path, job_id)["intent"] is None
    manager.shutdown()
    assert JobManager(state_dir=tmp_path).pending_recoveries() == []


def test_a_job_closed_by_the_stop_grace_keeps_its_intent_until_it_returns(tmp_path):
    clock = FakeClock()
    manager = JobManager(state_dir=tmp_path, clock=clock, stop_grace=5)
    job = Installs(obey_stop=False)
    job_id = manager.execute_job(job)
    assert job.inside.wait(WAIT)
    manager.cancel_job(job_id)
    clock.advance(6)  # the record closes as cancelled; the work still runs
    assert manager.get_job(job_id, False).state == "cancelled"
    assert last_record(tmp_path, job_id)["intent"] is not None
    job.release.set()
    deadline = time.monotonic() + WAIT
    while last_record(tmp_path, job_id)["intent"] is not None:
        assert time.monotonic() < deadline, "the returned job's record still names its intent"
        time.sleep(0.01)
    manager.shutdown()


def test_an_intent_the_journal_cannot_take_is_reported(tmp_path):
    manager = JobManager(state_dir=tmp_path)
    disk = FlakyDisk()
    manager._journal.writer = disk
    job = Installs()
    job_id = manager.submit(job, hold=True).job_id  # accepted while the disk works
    disk.fail()
    manager.release_job(job_id)
    assert job.inside.wait(WAIT) and job.saved is False
    job.release.set()
    assert manager.wait(job_id, WAIT).state == "succeeded"
    manager.shutdown()


def test_without_a_journal_an_intent_is_kept_in_memory():
    manager = JobManager()
    job = Installs()
    manager.execute_job(job)
    assert job.inside.wait(WAIT) and job.saved is True and job.intent["op"] == "install"
    job.release.set()
    manager.shutdown()
