from __future__ import annotations

import errno
import json
import logging
import os
import threading

import pytest

from pineapple.errors import JobError
from pineapple.jobs import FakeClock, JobManager
from pineapple.jobs.store import JOURNAL_NAME, JobJournal, JournalBusy
from tests.fixtures.tmpfs import fill, free, remount_read_only, remount_read_write, tmpfs

from .helpers import WAIT, BlockingJob, FailJob, FlakyDisk, KeyedJob, ReturnJob


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
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 6 unreadable or invalid record line(s)" in warnings[0], warnings
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


# ------------------------------------------------------- a full state directory
def _journal_lines(state_dir):
    return [json.loads(line) for line in (state_dir / JOURNAL_NAME).read_bytes().splitlines()]


def manager_on_flaky_disk(state_dir, **options):
    """A manager on a fake clock whose journal writes go through a :class:`FlakyDisk`."""
    clock = FakeClock()
    manager = JobManager(state_dir=state_dir, clock=clock, **options)
    disk = FlakyDisk()
    manager._journal.writer = disk
    return manager, clock, disk


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EROFS])
def test_failed_journal_writes_never_stop_running_jobs(tmp_path, caplog, code):
    manager, clock, disk = manager_on_flaky_disk(tmp_path, workers=1)
    running = BlockingJob()
    running_id = manager.execute_job(running)
    queued_id = manager.execute_job(ReturnJob("after"))
    assert running.started.wait(WAIT)
    with caplog.at_level(logging.WARNING, logger="pineapple.jobs"):
        disk.fail(code)
        running.release.set()
        # Both finish on the one worker although every record write fails.
        assert manager.wait(running_id, WAIT).state == "succeeded"
        assert manager.wait(queued_id, WAIT).result == "after"
        assert disk.failures >= 1 and manager.thread_count == 1
        status = manager.journal_status()
        assert status["state"] == "failing" and errno.errorcode[code] in status["error"]
        assert status["failing_since"] is not None
        disk.heal()
        clock.advance(60)  # the retry timer rewrites the journal from memory
    assert manager.journal_status()["state"] == "ok"
    errors_logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors_logged) == 1 and "cannot be written" in errors_logged[0].getMessage()
    assert "is written again" in caplog.text
    # The torn line is gone: the rewritten journal holds both final records.
    assert {(r["job_id"], r["state"]) for r in _journal_lines(tmp_path)} == {
        (running_id, "succeeded"), (queued_id, "succeeded")}
    manager.shutdown()


def test_submit_while_the_journal_fails_is_refused_without_a_trace(tmp_path):
    manager, clock, disk = manager_on_flaky_disk(tmp_path)
    disk.fail()
    with pytest.raises(JobError) as refused:
        manager.submit(KeyedJob("nmap"))
    assert refused.value.code == "journal_unavailable" and "No space left" in refused.value.message
    assert manager.counts() == {} and manager.list_jobs() == []
    disk.heal()
    clock.advance(60)
    accepted = manager.submit(KeyedJob("nmap"))
    assert not accepted.duplicate  # the refused job is no one's duplicate
    assert manager.wait(accepted.job_id, WAIT).state == "succeeded"
    assert manager.counts() == {"succeeded": 1}
    manager.shutdown()
    assert [r["job_id"] for r in JobJournal(tmp_path).load()] == [accepted.job_id]


def test_a_failing_journal_heals_on_the_next_write(tmp_path):
    manager, clock, disk = manager_on_flaky_disk(tmp_path)
    disk.fail()
    with pytest.raises(JobError):
        manager.submit(ReturnJob())
    disk.heal()
    with pytest.raises(JobError):  # retries are paced: not before the retry interval
        manager.submit(ReturnJob())
    clock.advance(manager._journal.retry_interval)  # the timer is due too; run it
    job_id = manager.execute_job(ReturnJob("ok"))
    assert manager.wait(job_id, WAIT).result == "ok"
    manager.shutdown()


def test_shutdown_completes_while_the_journal_fails(tmp_path):
    manager, _, disk = manager_on_flaky_disk(tmp_path, workers=1, stop_grace=1)
    running = BlockingJob()
    running_id = manager.execute_job(running)
    queued_id = manager.execute_job(ReturnJob())
    held_id = manager.submit(ReturnJob(), hold=True).job_id
    assert running.started.wait(WAIT)
    disk.fail()
    done = threading.Event()
    threading.Thread(target=lambda: (manager.shutdown(wait=True, timeout=0.05), done.set()), daemon=True).start()
    assert done.wait(WAIT), "shutdown blocked on a failing journal"
    states = {job.id: job.state for job in manager.list_jobs()}
    assert states == {running_id: "cancelled", queued_id: "interrupted", held_id: "interrupted"}


def test_a_writer_that_raises_anything_never_kills_a_worker(tmp_path):
    manager = JobManager(state_dir=tmp_path, workers=1)
    job_id = manager.execute_job(BlockingJob(obey_stop=True))
    job = manager.get_job(job_id, False)
    assert job.started.wait(WAIT)

    def broken(fd, data):
        raise RuntimeError("a bug in the writer")

    manager._journal.writer = broken
    job.release.set()
    assert manager.wait(job_id, WAIT).state == "succeeded"
    manager._journal.writer = os.write
    assert manager.wait(manager.execute_job(ReturnJob(2)), WAIT).result == 2
    manager.shutdown()


def test_records_json_cannot_carry_are_refused_at_submit(tmp_path):
    manager = JobManager(state_dir=tmp_path)
    with pytest.raises(JobError) as refused:
        manager.submit(KeyedJob("x", timeout=float("inf")))
    assert refused.value.code == "invalid_field" and manager.list_jobs() == []

    class BrokenParams(ReturnJob):
        def params(self):
            raise RuntimeError("params bug")

    with pytest.raises(RuntimeError):
        manager.submit(BrokenParams())
    assert manager.counts() == {}
    job = KeyedJob("x")
    assert not manager.submit(job).duplicate
    manager.shutdown()


def test_a_lone_surrogate_in_a_record_is_saved_and_read_back(tmp_path):
    manager = JobManager(state_dir=tmp_path)
    job_id = manager.execute_job(ReturnJob("bad \ud800 text"))
    manager.wait(job_id, WAIT)
    manager.shutdown()
    again = JobManager(state_dir=tmp_path)
    assert again.get_job(job_id, False).result == "bad \ud800 text"
    again.shutdown()


# ------------------------------------------------------------- record checks
GOOD = {"job_id": "good", "type": "install", "state": "succeeded", "is_complete": True, "result": None,
        "job_error": None, "error_code": None, "progress": {"fraction": 1.0, "message": ""}, "params": {},
        "created_at": 1.0, "started_at": 2.0, "finished_at": 3.0, "attempts": 1, "max_retries": 0,
        "timeout": None, "resource": "opkg", "parent_id": None, "child_id": None, "hooks": None,
        "log_total": 1, "log": ["done"]}

BAD_FIELDS = [
    ("attempts", "x"), ("attempts", -1), ("attempts", True), ("attempts", 1.5), ("log", 5), ("log", [1]),
    ("log_total", "many"), ("created_at", "yesterday"), ("finished_at", [1]), ("timeout", 0),
    ("timeout", "10"), ("state", "exploded"), ("state", None), ("is_complete", "yes"), ("job_error", 5),
    ("error_code", {}), ("type", 3), ("params", []), ("hooks", "x"), ("hooks", {"on_success": "x"}),
    ("progress", "half"), ("progress", {"fraction": 2, "message": ""}), ("progress", {"fraction": "x"}),
    ("resource", 1), ("parent_id", 2), ("max_retries", "2"),
]


@pytest.mark.parametrize("name,value", BAD_FIELDS)
def test_a_record_with_a_wrong_field_type_is_skipped(tmp_path, caplog, name, value):
    bad = dict(GOOD, job_id="bad", **{name: value})
    lines = [json.dumps(GOOD), json.dumps(bad)]
    (tmp_path / JOURNAL_NAME).write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="pineapple.jobs"):
        manager = JobManager(state_dir=tmp_path)
    assert [job.id for job in manager.list_jobs()] == ["good"]
    assert caplog.text.count("skipped 1 unreadable or invalid") == 1 and name in caplog.text
    manager.shutdown()


@pytest.mark.parametrize("field,raw", [("attempts", "1e999"), ("created_at", "NaN"),
                                       ("created_at", "-Infinity"), ("result", '{"x": [1e400]}')])
def test_numbers_json_cannot_write_back_are_skipped(tmp_path, field, raw):
    line = json.dumps(dict(GOOD, job_id="bad", **{field: "PLACEHOLDER"})).replace('"PLACEHOLDER"', raw)
    (tmp_path / JOURNAL_NAME).write_text(json.dumps(GOOD) + "\n" + line + "\n")
    manager = JobManager(state_dir=tmp_path)
    assert [job.id for job in manager.list_jobs()] == ["good"]
    assert manager.journal_status()["skipped"] == 1
    manager.shutdown()


def test_a_bad_last_line_leaves_the_previous_record_standing(tmp_path):
    lines = [json.dumps(GOOD), json.dumps(dict(GOOD, attempts="x", result="newer"))]
    (tmp_path / JOURNAL_NAME).write_text("\n".join(lines) + "\n")
    manager = JobManager(state_dir=tmp_path)
    assert manager.get_job("good", False).attempts == 1
    manager.shutdown()


def test_a_final_state_is_complete_whatever_the_flag_says(tmp_path):
    (tmp_path / JOURNAL_NAME).write_text(json.dumps(dict(GOOD, is_complete=False)) + "\n")
    manager = JobManager(state_dir=tmp_path)
    job = manager.get_job("good", False)
    assert (job.state, job.is_complete, job.was_successful) == ("succeeded", True, True)
    manager.shutdown()


def test_megabytes_of_junk_give_one_summary_warning(tmp_path, caplog):
    junk_lines = 124_002
    kinds = (b"%06d junk line, not JSON \xff\xfe garbage garbage\n", b'{"job_id": %06d, "state": "queued", "x": 1}\n',
             b'{"job_id": "j%06d", "state": "running", "attempts": "x"}\n')
    with open(tmp_path / JOURNAL_NAME, "wb") as out:
        out.write(json.dumps(GOOD).encode() + b"\n")
        out.writelines(kinds[i % 3] % i for i in range(junk_lines))
    assert (tmp_path / JOURNAL_NAME).stat().st_size > 5_000_000
    with caplog.at_level(logging.DEBUG, logger="pineapple.jobs"):
        manager = JobManager(state_dir=tmp_path)
    assert [job.id for job in manager.list_jobs()] == ["good"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and f"skipped {junk_lines} unreadable" in warnings[0], warnings
    assert len(caplog.records) < 10  # the per-line detail is bounded even at debug level
    assert (tmp_path / JOURNAL_NAME).stat().st_size < 2000  # compacted back to the live record
    manager.shutdown()


# ------------------------------------------- what the journal keeps in memory
def _record(job_id, n):
    return {"job_id": job_id, "state": "succeeded", "is_complete": True, "result": n, "log": ["x" * 50]}


def test_records_on_disk_are_read_back_not_kept_in_memory(tmp_path):
    """Issue 15: a kept record's line lives in the file, not in memory too;
    compaction and the way back from failing read it back from the file."""
    journal = JobJournal(tmp_path, max_bytes=2048)
    journal.load()
    for n in range(60):  # many compactions
        journal.write(_record(f"j{n % 7}", n))
    assert journal._pending == {} and (tmp_path / JOURNAL_NAME).stat().st_size <= 2048 + 200
    disk = FlakyDisk()
    journal.writer, journal.retry_interval = disk, 0.0
    disk.fail()
    assert journal.write(_record("j1", "while failing")) is False  # a torn line is left in the file
    assert journal.write(_record("new", "while failing")) is False
    assert sorted(journal._pending) == ["j1", "new"]  # only what is not on disk
    disk.heal()
    assert journal.retry() and journal._pending == {}
    journal.write(_record("j2", "after"))
    journal.close()
    records = {r["job_id"]: r["result"] for r in JobJournal(tmp_path).load()}
    assert records == {"j0": 56, "j1": "while failing", "j2": "after", "j3": 59, "j4": 53, "j5": 54, "j6": 55,
                       "new": "while failing"}


def test_a_journal_changed_behind_its_back_drops_what_it_cannot_read_back(tmp_path, caplog):
    journal = JobJournal(tmp_path, max_bytes=4096)
    journal.load()
    journal.write(_record("a", 1))
    journal.write(_record("b", 2))
    path = tmp_path / JOURNAL_NAME
    path.write_bytes(b"#" * path.stat().st_size)  # another program's junk, same size, same file
    with caplog.at_level(logging.ERROR, logger="pineapple.jobs"):
        for n in range(60):  # on to a compaction
            journal.write(_record("c", n))
    assert "2 job record(s) could not be read back" in caplog.text
    assert journal.status()["state"] == "ok" and len(journal) == 1
    journal.close()
    assert [(r["job_id"], r["result"]) for r in JobJournal(tmp_path).load()] == [("c", 59)]


# ------------------------------------------------- real filesystems (need root)
def test_a_real_full_tmpfs(tmp_path, caplog):
    with tmpfs(tmp_path / "mnt", size_kib=64) as mnt:
        clock = FakeClock()
        manager = JobManager(state_dir=mnt / "state", workers=1, clock=clock)
        first = manager.execute_job(ReturnJob("before"))
        manager.wait(first, WAIT)
        fill(mnt)
        running = BlockingJob()
        with caplog.at_level(logging.WARNING, logger="pineapple.jobs"):
            with pytest.raises(JobError) as refused:
                for _ in range(50):  # the journal's last free bytes take a few records
                    manager.execute_job(ReturnJob("x" * 2000))
            assert refused.value.code == "journal_unavailable" and "ENOSPC" in refused.value.message
            assert manager.journal_status()["state"] == "failing"
            free(mnt)
            clock.advance(60)
            assert manager.journal_status()["state"] == "ok"
            running_id = manager.execute_job(running)
            assert running.started.wait(WAIT)
            fill(mnt)
            running.release.set()
            assert manager.wait(running_id, WAIT).state == "succeeded"
            free(mnt)
            clock.advance(60)
        assert manager.journal_status()["state"] == "ok"
        accepted = {job.id: job.state for job in manager.list_jobs()}
        manager.shutdown()
        again = JobManager(state_dir=mnt / "state")
        assert {job.id: job.state for job in again.list_jobs()} == accepted
        again.shutdown()


def test_a_read_only_state_directory_runs_in_memory(tmp_path, caplog):
    with tmpfs(tmp_path / "mnt") as mnt:
        state = mnt / "state"
        first = JobManager(state_dir=state)
        old_id = first.execute_job(ReturnJob("from before"))
        first.wait(old_id, WAIT)
        first.shutdown()
        remount_read_only(mnt)
        try:
            with caplog.at_level(logging.WARNING, logger="pineapple.jobs"):
                manager = JobManager(state_dir=state)
            assert "IN MEMORY ONLY" in caplog.text and "EROFS" in caplog.text
            status = manager.journal_status()
            assert status["state"] == "memory" and "EROFS" in status["error"]
            assert manager.get_job(old_id, False).result == "from before"  # what was there is read
            new_id = manager.execute_job(ReturnJob("new"))
            assert manager.wait(new_id, WAIT).result == "new"
            manager.shutdown()
        finally:
            remount_read_write(mnt)
        assert [r["job_id"] for r in JobJournal(state).load()] == [old_id]


def test_a_state_directory_that_cannot_be_created_runs_in_memory(tmp_path):
    with tmpfs(tmp_path / "mnt") as mnt:
        remount_read_only(mnt)
        try:
            manager = JobManager(state_dir=mnt / "missing" / "state")
            assert manager.journal_status()["state"] == "memory"
            assert manager.wait(manager.execute_job(ReturnJob(1)), WAIT).result == 1
            manager.shutdown()
        finally:
            remount_read_write(mnt)


def test_a_state_directory_without_write_permission_runs_in_memory(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores permissions; the read-only tmpfs tests cover this as root")
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o555)
    try:
        manager = JobManager(state_dir=state)
        assert manager.journal_status()["state"] == "memory"
        assert manager.wait(manager.execute_job(ReturnJob(1)), WAIT).result == 1
        manager.shutdown()
    finally:
        state.chmod(0o755)
