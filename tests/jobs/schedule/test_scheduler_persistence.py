"""The scheduler across restarts: schedules.json round trips, runs missed
while the daemon was down, corrupt files, and config-file schedules
(source "config": re-applied on each start, read-only over the API)."""
from __future__ import annotations

import json
import logging

import pytest

from pineapple.errors import JobError
from pineapple.jobs.schedule.scheduler import (
    SCHEDULE_READ_ONLY,
    ScheduleConfigError,
    ScheduleDefinition,
)
from pineapple.jobs.schedule.store import FILE_NAME

from .test_scheduler import HOUR, HOURLY, START, Harness, add, code_of


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


@pytest.fixture
def generations():
    """Harnesses to close at teardown (restarts add to it)."""
    made: list[Harness] = []
    yield made
    for harness in made:
        harness.close()


def boot(state, generations, config=(), **options) -> Harness:
    harness = Harness(state, **options).start(config)
    generations.append(harness)
    return harness


def restart(h: Harness, generations, after: float = 0.0, config=()) -> Harness:
    following = h.restart(after=after, config=config)
    generations.append(following)
    return following


def saved(state) -> dict:
    return {record["id"]: record for record in json.loads((state / FILE_NAME).read_text())["schedules"]}


# -------------------------------------------------------------- round trip
def test_schedules_survive_a_restart_and_fire_afterwards(state, generations):
    h = boot(state, generations)
    add(h, "s", params={"value": "kept"}, misfire_grace_time=600, coalesce=False, max_instances=2)
    h.advance(HOUR)
    before = h.scheduler.get("s")
    h = restart(h, generations, after=10)
    after = h.scheduler.get("s")
    for key in ("params", "trigger", "options", "runs", "last_job_id", "last_run_epoch", "next_run_epoch", "source"):
        assert after[key] == before[key], key
    assert after["active_jobs"] == []  # the old generation's jobs are not this manager's
    h.advance(HOUR - 10)
    [job] = h.jobs("noop")
    assert h.manager.wait(job.id, 10).result == "kept"
    assert h.scheduler.get("s")["runs"] == 2


def test_every_change_is_saved_atomically(state, generations):
    h = boot(state, generations)
    add(h, "a")
    add(h, "b")
    assert sorted(saved(state)) == ["a", "b"]
    h.scheduler.pause("a")
    assert saved(state)["a"]["options"]["enabled"] is False
    h.scheduler.remove("b")
    assert sorted(saved(state)) == ["a"]
    h.scheduler.resume("a")
    h.advance(HOUR)
    assert saved(state)["a"]["runs"] == 1
    assert sorted(p.name for p in state.iterdir()) == [FILE_NAME]  # no temp file left behind


def test_runs_missed_while_down_follow_the_misfire_rules(state, generations):
    h = boot(state, generations)
    add(h, "coalesced", HOURLY)
    add(h, "strict", HOURLY, misfire_grace_time=60)
    h = restart(h, generations, after=5 * HOUR + 30)
    h.advance(0)  # due at start: the timer is armed for "now"
    coalesced, strict = h.scheduler.get("coalesced"), h.scheduler.get("strict")
    assert (coalesced["runs"], coalesced["missed"]) == (1, 0)
    assert (strict["runs"], strict["missed"]) == (1, 0)  # 17:00 is 30 s late, within 60 s
    assert coalesced["next_run"] == "2025-06-01T18:00:00+00:00"


def test_a_finished_once_schedule_does_not_run_again_after_a_restart(state, generations):
    h = boot(state, generations)
    add(h, "once", {"type": "date", "run_date": "2025-06-01T13:00:00+00:00"})
    h.advance(HOUR)
    h = restart(h, generations)
    h.advance(HOUR)
    assert (h.scheduler.get("once")["runs"], h.scheduler.get("once")["state"]) == (1, "finished")


def test_a_corrupt_file_is_set_aside_and_the_scheduler_starts_empty(state, generations, caplog):
    state.mkdir()
    (state / FILE_NAME).write_text('{"version": 1, "schedules": [{"id": "a"')  # torn write
    with caplog.at_level(logging.WARNING, "pineapple.jobs.schedule"):
        h = boot(state, generations)
    assert h.scheduler.list() == []
    assert "unusable" in caplog.text
    assert (state / (FILE_NAME + ".corrupt")).read_text().startswith('{"version": 1')
    add(h, "fresh")
    assert list(saved(state)) == ["fresh"]


def test_an_invalid_record_is_dropped_and_the_others_kept(state, generations):
    h = boot(state, generations)
    add(h, "good")
    add(h, "bad")
    h.close()
    data = json.loads((state / FILE_NAME).read_text())
    data["schedules"][0]["trigger"] = {"type": "fortnightly"}  # "bad" sorts first
    (state / FILE_NAME).write_text(json.dumps(data))
    h = boot(state, generations, start=START)
    assert [s["schedule_id"] for s in h.scheduler.list()] == ["good"]
    assert (state / (FILE_NAME + ".corrupt")).exists()
    assert list(saved(state)) == ["good"]


def test_an_unwritable_state_dir_is_logged_not_fatal(tmp_path, generations, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with caplog.at_level(logging.ERROR, "pineapple.jobs.schedule"):
        h = boot(blocker, generations)
        add(h, "s")
    assert "cannot save schedules" in caplog.text
    h.advance(HOUR)
    assert h.scheduler.get("s")["runs"] == 1


def test_without_a_state_dir_nothing_is_written(tmp_path, generations):
    h = boot(None, generations)
    add(h, "s")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------- config file
NIGHTLY = ScheduleDefinition("nightly", "noop", {"value": "cfg"}, {"type": "daily", "at": "04:00",
                                                                   "timezone": "UTC"})


def test_config_schedules_are_loaded_with_source_config(state, generations):
    h = boot(state, generations, config=[NIGHTLY])
    state_ = h.scheduler.get("nightly")
    assert (state_["source"], state_["next_run"]) == ("config", "2025-06-02T04:00:00+00:00")
    assert state_["params"] == {"value": "cfg"}


def test_config_schedules_are_read_only_over_the_api_but_can_be_paused(state, generations):
    h = boot(state, generations, config=[NIGHTLY])
    assert code_of(h.scheduler.modify, "nightly", coalesce=False) == SCHEDULE_READ_ONLY
    assert code_of(h.scheduler.remove, "nightly") == SCHEDULE_READ_ONLY
    assert code_of(add, h, "nightly", replace_existing=True) == SCHEDULE_READ_ONLY
    assert h.scheduler.pause("nightly")["state"] == "paused"
    assert h.scheduler.run_now("nightly").job_id
    h = restart(h, generations, config=[NIGHTLY])  # the config says enabled: the pause is gone
    assert h.scheduler.get("nightly")["state"] == "scheduled"
    assert h.scheduler.get("nightly")["runs"] == 1  # the history is kept


def test_an_unchanged_config_schedule_keeps_its_next_run_and_phase(state, generations):
    every = ScheduleDefinition("often", "noop", {}, {"type": "interval", "every": "1h"})
    h = boot(state, generations, config=[every])
    h.advance(HOUR)
    h = restart(h, generations, after=20 * 60, config=[every])
    assert h.scheduler.get("often")["next_run_epoch"] == START + 2 * HOUR  # not 1 h after the restart
    changed = ScheduleDefinition("often", "noop", {}, {"type": "interval", "every": "2h"})
    h = restart(h, generations, after=0, config=[changed])
    often = h.scheduler.get("often")
    assert often["next_run_epoch"] == START + HOUR + 20 * 60 + 2 * HOUR
    assert often["runs"] == 1


def test_config_wins_over_saved_schedules_and_removed_sections_go(state, generations):
    h = boot(state, generations)
    add(h, "nightly", params={"value": "api"})
    h = restart(h, generations, config=[NIGHTLY])
    assert h.scheduler.get("nightly")["source"] == "config"
    assert h.scheduler.get("nightly")["params"] == {"value": "cfg"}
    h = restart(h, generations, config=[])
    assert h.scheduler.list() == []


def test_a_config_schedule_the_registry_rejects_stops_the_load(state, generations):
    bad = ScheduleDefinition("bad", "nope", {}, {"type": "daily", "at": "04:00"})
    h = Harness(state)
    generations.append(h)
    with pytest.raises(ScheduleConfigError, match="'bad'.*unknown_job_type"):
        h.scheduler.load([bad])


def test_errors_carry_stable_codes(state, generations):
    h = boot(state, generations, config=[NIGHTLY])
    with pytest.raises(JobError) as caught:
        h.scheduler.remove("nightly")
    assert caught.value.code == "schedule_read_only" and "configuration" in caught.value.message
