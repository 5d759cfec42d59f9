from __future__ import annotations

import json
import logging

import pytest

from pineapple.jobs import FakeClock, JobManager
from pineapple.jobs.store import JOURNAL_NAME, JobJournal, JournalBusy

from .helpers import WAIT, BlockingJob, FailJob, ReturnJob


def test_restart_turns_active_jobs_into_interrupted(tmp_path):
    clock = FakeClock()
    first = JobManager(state_dir=tmp_path, workers=1, clock=clock)
    done_id = first.execute_job(ReturnJob({"installed": ["nmap"]}))
    first.wait(done_id, WAIT)
    failed_id = first.execute_job(FailJob("no space", code="insufficient_space"))
    first.wait(failed_id, WAIT)
    running = BlockingJob()
    running_id = first.execute_job(running)
    assert running.started.wait(WAIT)
    queued_id = first.execute_job(ReturnJob())
    # "crash": the first manager is never shut down; its journal is let go the way
    # a dying process lets go of its file lock, and a new manager opens the state.
    first._journal.close()
    second = JobManager(state_dir=tmp_path, clock=clock)
    for job_id, was in ((running_id, "running"), (queued_id, "queued")):
        job = second.get_job(job_id, remove_if_complete=False)
        assert (job.state, job.is_complete, job.error_code) == ("interrupted", True, "interrupted")
        assert f"while the job was {was}" in job.error
    done = second.get_job(done_id, remove_if_complete=False)
    assert (done.state, done.result, done.type) == ("succeeded", {"installed": ["nmap"]}, "ReturnJob")
    assert done.log[-1] == "returning {'installed': ['nmap']}"
    failed = second.get_job(failed_id, remove_if_complete=False)
    assert (failed.state, failed.error_code, failed.error) == ("failed", "insufficient_space", "no space")
    running.release.set()
    first.shutdown()
    second.shutdown()


def test_restored_jobs_are_pruned_like_others(tmp_path):
    clock = FakeClock()
    first = JobManager(state_dir=tmp_path, clock=clock)
    job_id = first.execute_job(ReturnJob())
    first.wait(job_id, WAIT)
    first.shutdown()
    second = JobManager(state_dir=tmp_path, clock=clock, retention=60)
    assert second.get_job(job_id, remove_if_complete=False) is not None
    clock.advance(61)
    assert second.get_job(job_id, remove_if_complete=False) is None
    second.shutdown()
    assert JobManager(state_dir=tmp_path, clock=clock).list_jobs() == []


def test_shutdown_saves_the_final_record(tmp_path):
    manager = JobManager(state_dir=tmp_path, workers=1, stop_grace=1)
    running = BlockingJob()
    running_id = manager.execute_job(running)
    assert running.started.wait(WAIT)
    manager.shutdown(wait=True, timeout=0.01)
    records = JobJournal(tmp_path).load()
    assert [(r["job_id"], r["state"]) for r in records] == [(running_id, "cancelled")]


def test_corrupt_journal_never_stops_start_up(tmp_path, caplog):
    good = {"job_id": "good-1", "type": "install", "state": "succeeded", "is_complete": True,
            "result": {"installed": ["a"]}, "job_error": None, "log": ["Configuring a."]}
    lines = [
        json.dumps(good),
        "{not json",
        "[1, 2, 3]",
        '"just a string"',
        json.dumps({"state": "running"}),  # no id
        "\udcff\udcfe\x00 binary garbage",
        json.dumps({"job_id": "gone", "state": "queued"}),
        json.dumps({"job_id": "gone", "removed": True}),
        json.dumps({"job_id": "half", "state": "running", "is_complete": False})[:-9],  # torn write
    ]
    (tmp_path / JOURNAL_NAME).write_bytes("\n".join(lines).encode("utf-8", "surrogateescape"))
    with caplog.at_level(logging.WARNING, logger="pineapple.jobs"):
        manager = JobManager(state_dir=tmp_path)
    assert [job.id for job in manager.list_jobs()] == ["good-1"]
    job = manager.get_job("good-1")
    assert (job.state, job.result, list(job.log)) == ("succeeded", {"installed": ["a"]}, ["Configuring a."])
    assert caplog.text.count("skipping corrupt record") == 6
    manager.shutdown()


def test_journal_compacts_and_stays_bounded(tmp_path):
    manager = JobManager(state_dir=tmp_path, journal_max_bytes=16 * 1024, max_finished=10)
    for _ in range(300):
        manager.wait(manager.execute_job(ReturnJob("x" * 100)), WAIT)
    size = (tmp_path / JOURNAL_NAME).stat().st_size
    assert size <= 16 * 1024 + 2048, size
    manager.shutdown()
    records = JobJournal(tmp_path).load()
    assert len(records) == 10 and all(r["state"] == "succeeded" for r in records)


def test_a_state_dir_has_one_writer(tmp_path):
    first = JobManager(state_dir=tmp_path)
    with pytest.raises(JournalBusy):
        JobManager(state_dir=tmp_path)
    first.shutdown()
    JobManager(state_dir=tmp_path).shutdown()


def test_unwritable_state_is_reported_not_swallowed(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError):
        JobManager(state_dir=blocker / "state")


def test_restart_lineage_survives_a_restart(tmp_path):
    first = JobManager(state_dir=tmp_path)
    parent_id = first.execute_job(FailJob("first try"))
    first.wait(parent_id, WAIT)
    child_id = first.restart_job(parent_id, lambda old: ReturnJob("again")).job_id
    first.wait(child_id, WAIT)
    first.shutdown()
    second = JobManager(state_dir=tmp_path)
    parent, child = second.get_job(parent_id, False), second.get_job(child_id, False)
    assert (parent.child_id, child.parent_id, child.result) == (child_id, parent_id, "again")
    second.shutdown()
