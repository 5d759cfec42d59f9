"""schedules.json: atomic saves, loading, and unusable files set aside."""
from __future__ import annotations

import json
import logging
import os

import pytest

from pineapple.jobs.schedule import store as store_module
from pineapple.jobs.schedule.store import FILE_NAME, ScheduleStore

RECORDS = [{"id": "a", "job": "update", "runs": 3}, {"id": "b", "job": "install", "params": {"packages": ["ü"]}}]


@pytest.fixture
def store(tmp_path) -> ScheduleStore:
    return ScheduleStore(tmp_path / "state")


def test_round_trip(store):
    store.save(RECORDS)
    assert store.load() == RECORDS
    data = json.loads(open(store.path, encoding="utf-8").read())
    assert data == {"version": 1, "schedules": RECORDS}


def test_a_missing_file_means_no_schedules(store):
    assert store.load() == []


def test_save_replaces_the_file_atomically(store, monkeypatch):
    store.save(RECORDS)
    replaced = []
    real_replace, real_fsync = os.replace, os.fsync
    synced = []
    monkeypatch.setattr(store_module.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    monkeypatch.setattr(store_module.os, "replace", lambda a, b: replaced.append((a, b)) or real_replace(a, b))
    store.save(RECORDS[:1])
    assert replaced == [(store.path + ".tmp", store.path)]
    assert len(synced) == 2  # the file before the rename, the directory after it
    assert os.listdir(store.dir) == [FILE_NAME]
    assert store.load() == RECORDS[:1]


def test_a_failed_write_leaves_the_old_file(store, monkeypatch):
    store.save(RECORDS)

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        store.save([])
    monkeypatch.undo()
    assert store.load() == RECORDS


@pytest.mark.parametrize("content", [
    b"", b"{not json", b'{"version": 1, "schedules": [{"id"', b"[]", b'{"version": 1}',
    b'{"version": 1, "schedules": [1, 2]}', b'{"version": 99, "schedules": []}',
    b'{"schedules": []}', b"\xff\xfe",
])
def test_an_unusable_file_is_renamed_aside(store, content, caplog):
    os.makedirs(store.dir)
    with open(store.path, "wb") as handle:
        handle.write(content)
    with caplog.at_level(logging.WARNING, "pineapple.jobs.schedule"):
        assert store.load() == []
    assert "unusable" in caplog.text
    assert not os.path.exists(store.path)
    with open(store.path + ".corrupt", "rb") as kept:
        assert kept.read() == content


def test_set_aside_can_copy(store):
    store.save(RECORDS)
    assert store.set_aside("one bad record", copy=True) == store.path + ".corrupt"
    assert store.load() == RECORDS
    assert json.load(open(store.path + ".corrupt"))["schedules"] == RECORDS
