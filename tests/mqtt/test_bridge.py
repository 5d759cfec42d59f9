"""The daemon's MQTT side against a real mosquitto (tests/fixtures/broker.py)."""
from __future__ import annotations

import json

import pytest

from tests.fixtures.mqtt import Recorder, wait_until

DEVICE = "dev1"
PREFIX = f"pineapple/{DEVICE}"


def mqtt_args(broker, *extra: str) -> list[str]:
    args = ["--set", "mqtt.enabled=1", "--set", f"mqtt.port={broker.port}", "--set", f"mqtt.device_id={DEVICE}",
            "--set", "mqtt.keepalive=5"]
    for item in extra:
        args += ["--set", item]
    return args


@pytest.fixture
def recorder(broker):
    rec = Recorder(broker.port, [f"{PREFIX}/#"])
    yield rec
    rec.close()


def states_of(recorder, job_id):
    return [s for s in recorder.json_on(f"{PREFIX}/jobs/{job_id}/state") if s is not None]


def test_states_in_order_and_retained_state_matches_poll(broker, recorder, start_daemon):
    daemon = start_daemon(mqtt_args(broker))
    recorder.wait_for(lambda msgs: (f"{PREFIX}/status", b"online", False) in msgs or
                      any(t == f"{PREFIX}/status" and p == b"online" for t, p, _ in msgs))
    client = daemon.client()
    job_id = client.install(["myapp"])["job_id"]
    final = client.wait(job_id, timeout=30)
    recorder.wait_for(lambda msgs: any(s.get("is_complete") for s in states_of(recorder, job_id)))
    states = [s["state"] for s in states_of(recorder, job_id)]
    assert states == ["queued", "running", "succeeded"]
    progress = recorder.json_on(f"{PREFIX}/jobs/{job_id}/progress")
    assert progress and progress[-1]["fraction"] == 1.0
    fractions = [p["fraction"] for p in progress if p["fraction"] is not None]
    assert fractions == sorted(fractions), f"progress went back: {fractions}"  # never, busy machine or not
    logged = [p for t, p, _ in recorder.messages if t == f"{PREFIX}/jobs/{job_id}/log"]
    assert b"Configuring myapp." in logged, (logged, client.get(job_id)["log"], client.stats()["mqtt"])
    late = Recorder(broker.port, [f"{PREFIX}/jobs/{job_id}/state"], client_id="late")
    try:
        retained = late.wait_for(lambda msgs: msgs)
        assert retained[0][2] is True, "the state is not retained"
        assert json.loads(retained[0][1]) == client.poll(job_id) == final
    finally:
        late.close()


def test_last_will_when_the_daemon_is_killed(broker, recorder, start_daemon):
    daemon = start_daemon(mqtt_args(broker))
    recorder.wait_for(lambda msgs: any(t == f"{PREFIX}/status" and p == b"online" for t, p, _ in msgs))
    daemon.kill()
    recorder.wait_for(lambda msgs: msgs[-1][:2] == (f"{PREFIX}/status", b"offline"), timeout=20)


def test_clean_stop_says_offline(broker, recorder, start_daemon):
    daemon = start_daemon(mqtt_args(broker))
    recorder.wait_for(lambda msgs: any(t == f"{PREFIX}/status" and p == b"online" for t, p, _ in msgs))
    assert daemon.stop() == 0
    recorder.wait_for(lambda msgs: any(t == f"{PREFIX}/status" and p == b"offline" for t, p, _ in msgs))
    # A disconnect the daemon asked for is no lost connection: no WARNING in its log.
    log = daemon.log()
    assert "MQTT: disconnected" in log and "connection lost" not in log and "WARNING" not in log, log


def test_broker_restart_mid_job_still_delivers_final_state(broker, start_daemon):
    daemon = start_daemon(mqtt_args(broker), env={"OPKG_STANDIN_DOWNLOAD_DELAY": "1"})
    first = Recorder(broker.port, [f"{PREFIX}/#"], client_id="first")
    first.wait_for(lambda msgs: any(p == b"online" for _, p, _ in msgs))
    client = daemon.client()
    job_id = client.install(["myapp"])["job_id"]
    first.wait_for(lambda msgs: any(s["state"] == "running" for s in states_of(first, job_id)))
    first.close()
    broker.kill()  # the job goes on without a broker
    final = client.wait(job_id, timeout=60)
    assert final["state"] == "succeeded"
    broker.start()  # same port, empty broker (no persistence)
    after = Recorder(broker.port, [f"{PREFIX}/jobs/{job_id}/state", f"{PREFIX}/status"], client_id="after")
    try:
        after.wait_for(lambda msgs: any(t.endswith("/state") and json.loads(p).get("is_complete")
                                        for t, p, _ in msgs if p), timeout=45)
        assert states_of(after, job_id)[-1] == client.poll(job_id)
    finally:
        after.close()


def test_pruned_job_clears_its_retained_state(broker, recorder, start_daemon):
    daemon = start_daemon(mqtt_args(broker))
    client = daemon.client()
    job_id = client.install(["tool-a"])["job_id"]
    client.wait(job_id, timeout=30)
    recorder.wait_for(lambda msgs: any(s.get("is_complete") for s in states_of(recorder, job_id)))
    assert client.prune()["removed"] == 1
    topic = f"{PREFIX}/jobs/{job_id}/state"
    recorder.wait_for(lambda msgs: msgs[-1][:2] == (topic, b"") or (topic, b"", False) in msgs)
    late = Recorder(broker.port, [topic], client_id="late")
    try:
        with pytest.raises(AssertionError):
            late.wait_for(lambda msgs: msgs, timeout=1.5)  # nothing retained any more
    finally:
        late.close()


def test_commands(broker, recorder, start_daemon):
    daemon = start_daemon(mqtt_args(broker, "mqtt.commands=1"))
    recorder.wait_for(lambda msgs: any(p == b"online" for _, p, _ in msgs))
    recorder.publish(f"{PREFIX}/jobs/submit", json.dumps({"ref": "r1", "job": "install", "packages": ["tool-b"]}))
    reply = recorder.wait_for(lambda msgs: any(t == f"{PREFIX}/jobs/reply/r1" for t, _, _ in msgs))
    answer = recorder.json_on(f"{PREFIX}/jobs/reply/r1")[0]
    assert answer["ok"] and answer["ref"] == "r1" and answer["device"] == DEVICE
    job_id = answer["payload"]["job_id"]
    assert daemon.client().wait(job_id, timeout=30)["state"] == "succeeded"
    assert reply
    # malformed payloads get an error reply and nothing runs
    recorder.publish(f"{PREFIX}/jobs/submit", b"{not json")
    recorder.wait_for(lambda msgs: any(t == f"{PREFIX}/jobs/reply" for t, _, _ in msgs))
    assert recorder.json_on(f"{PREFIX}/jobs/reply")[0]["code"] == "invalid_json"
    recorder.publish(f"{PREFIX}/jobs/submit", json.dumps({"ref": "r2", "job": "install", "packages": ["a;reboot"]}))
    recorder.wait_for(lambda msgs: any(t == f"{PREFIX}/jobs/reply/r2" for t, _, _ in msgs))
    assert recorder.json_on(f"{PREFIX}/jobs/reply/r2")[0]["code"] == "invalid_package_name"
    recorder.publish(f"{PREFIX}/jobs/cancel", json.dumps({"ref": "r3", "job_id": "nope"}))
    recorder.wait_for(lambda msgs: any(t == f"{PREFIX}/jobs/reply/r3" for t, _, _ in msgs))
    assert recorder.json_on(f"{PREFIX}/jobs/reply/r3")[0]["code"] == "unknown_job"
    assert daemon.client().list()["total"] == 1


def test_commands_are_off_by_default(broker, recorder, start_daemon):
    daemon = start_daemon(mqtt_args(broker))
    recorder.wait_for(lambda msgs: any(p == b"online" for _, p, _ in msgs))
    recorder.publish(f"{PREFIX}/jobs/submit", json.dumps({"ref": "r1", "job": "install", "packages": ["tool-b"]}))
    daemon.client().ping()
    with pytest.raises(AssertionError):
        recorder.wait_for(lambda msgs: any("/reply/" in t for t, _, _ in msgs), timeout=1.5)
    assert daemon.client().list()["total"] == 0


def test_broker_down_at_start_never_blocks_jobs(start_daemon):
    from tests.fixtures.broker import free_port

    daemon = start_daemon(["--set", "mqtt.enabled=1", "--set", f"mqtt.port={free_port()}"])
    client = daemon.client()
    job_id = client.install(["tool-c"])["job_id"]
    assert client.wait(job_id, timeout=30)["state"] == "succeeded"
    assert client.stats()["mqtt"]["connected"] is False
    wait_until(lambda: client.stats()["mqtt"]["pending_states"] >= 1, what="state kept for later")


def test_stale_in_flight_states_never_replace_the_final_one(broker, start_daemon):
    """States stuck in flight (a frozen broker) are resent by paho after a
    reconnect; the daemon's newer state must still be the retained one."""
    import signal

    daemon = start_daemon(mqtt_args(broker), env={"OPKG_STANDIN_DOWNLOAD_DELAY": "1"})
    client = daemon.client()
    wait_until(lambda: client.stats()["mqtt"]["connected"], what="daemon connected")
    broker.proc.send_signal(signal.SIGSTOP)  # frozen: publishes go out, no PUBACK comes back
    try:
        job_id = client.install(["myapp"])["job_id"]
        wait_until(lambda: client.poll(job_id)["state"] == "running", what="job running")
    finally:
        broker.kill()  # SIGKILL works on a stopped process
    wait_until(lambda: not client.stats()["mqtt"]["connected"], what="daemon noticed")
    final = client.wait(job_id, timeout=60)
    assert final["state"] == "succeeded"
    broker.start()
    watcher = Recorder(broker.port, [f"{PREFIX}/jobs/{job_id}/state"], client_id="watcher")
    try:
        wait_until(lambda: client.stats()["mqtt"]["pending_states"] == 0, timeout=45, what="states delivered")
        # The watcher may subscribe after paho's resends (the daemon reconnects
        # on its own schedule), but the daemon publishes its state only after
        # they went out on the same connection: once it arrived, nothing stale
        # can follow.
        watcher.wait_for(lambda msgs: any(json.loads(p)["state"] == "succeeded" for _, p, _ in msgs if p), timeout=10)
        assert [s["state"] for s in states_of(watcher, job_id)][-1] == "succeeded", "a stale state came last"
    finally:
        watcher.close()
    late = Recorder(broker.port, [f"{PREFIX}/jobs/{job_id}/state"], client_id="late")
    try:
        retained = late.wait_for(lambda msgs: msgs)
        assert json.loads(retained[0][1]) == client.poll(job_id), "a stale state is retained"
    finally:
        late.close()


def test_every_reconnect_republishes_the_states_of_all_known_jobs(broker, start_daemon):
    daemon = start_daemon(mqtt_args(broker))
    client = daemon.client()
    wait_until(lambda: client.stats()["mqtt"]["connected"], what="daemon connected")
    job_id = client.install(["tool-a"])["job_id"]
    client.wait(job_id, timeout=30)
    wait_until(lambda: client.stats()["mqtt"]["pending_states"] == 0, what="the broker has every state")
    topic = f"{PREFIX}/jobs/{job_id}/state"
    for _ in range(2):  # a restarted broker without persistence has forgotten everything, every time
        broker.restart()
        watcher = Recorder(broker.port, [topic], client_id="watcher")
        try:
            watcher.wait_for(lambda msgs: msgs, timeout=45)  # republished after the reconnect
        finally:
            watcher.close()
        late = Recorder(broker.port, [topic], client_id="late")
        try:
            retained = late.wait_for(lambda msgs: msgs, timeout=10)
            assert retained[0][2] is True, "not retained"
            assert json.loads(retained[0][1]) == client.poll(job_id)
        finally:
            late.close()


def test_what_waited_for_the_broker_goes_out_in_the_order_it_happened(broker, start_daemon):
    """A whole job run while the broker was away: on reconnect its progress
    and log lines come first and the final state last, never the state first."""
    import signal

    daemon = start_daemon(mqtt_args(broker))
    client = daemon.client()
    wait_until(lambda: client.stats()["mqtt"]["connected"], what="daemon connected")
    broker.kill()
    wait_until(lambda: not client.stats()["mqtt"]["connected"], what="daemon noticed")
    job_id = client.install(["myapp"])["job_id"]
    assert client.wait(job_id, timeout=30)["state"] == "succeeded"
    daemon.send_signal(signal.SIGSTOP)  # a subscriber is in place before the daemon can reconnect
    try:
        broker.start()
        after = Recorder(broker.port, [f"{PREFIX}/jobs/{job_id}/#"], client_id="after")
    finally:
        daemon.send_signal(signal.SIGCONT)
    try:
        after.wait_for(lambda msgs: any(t.endswith("/state") for t, _, _ in msgs), timeout=60)
        kinds = [t.rsplit("/", 1)[1] for t, _, _ in after.messages]
        assert kinds.count("progress") >= 2 and "log" in kinds, kinds
        assert kinds[-1] == "state" and kinds.count("state") == 1, kinds
        fractions = [p["fraction"] for p in after.json_on(f"{PREFIX}/jobs/{job_id}/progress")
                     if p["fraction"] is not None]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0, fractions
        assert states_of(after, job_id) == [client.poll(job_id)]
    finally:
        after.close()


def test_a_notification_hook_publishes_the_final_state(broker, recorder, start_daemon):
    daemon = start_daemon(mqtt_args(broker))
    recorder.wait_for(lambda msgs: any(p == b"online" for _, p, _ in msgs))
    client = daemon.client()
    ok = client.install(["tool-b"], on_success=[{"notify": "mqtt", "message": "tool-b is in"}])["job_id"]
    bad = client.install(["failpkg"], on_failure=[{"notify": "mqtt", "message": "no luck"}])["job_id"]
    finals = {job_id: client.wait(job_id, timeout=30) for job_id in (ok, bad)}
    topic = f"{PREFIX}/notifications"
    recorder.wait_for(lambda msgs: len([t for t, _, _ in msgs if t == topic]) == 2)
    notes = {note["job"]["job_id"]: note for note in recorder.json_on(topic)}
    assert notes[ok]["message"] == "tool-b is in" and notes[ok]["device"] == DEVICE
    assert notes[ok]["job"] == finals[ok] and notes[ok]["job"]["state"] == "succeeded"
    assert notes[bad]["job"] == finals[bad] and notes[bad]["job"]["state"] == "failed"
    assert [retain for t, _, retain in recorder.messages if t == topic] == [False, False]


def test_progress_never_goes_back_even_when_a_retry_starts_over(broker, recorder, start_daemon):
    daemon = start_daemon(mqtt_args(broker))
    recorder.wait_for(lambda msgs: any(p == b"online" for _, p, _ in msgs))
    client = daemon.client()
    job_id = client.install(["failpkg"], max_retries=2)["job_id"]
    final = client.wait(job_id, timeout=60)
    assert final["state"] == "failed"
    recorder.wait_for(lambda msgs: any(s.get("is_complete") for s in states_of(recorder, job_id)))
    messages = [p for t, p, _ in recorder.messages if t == f"{PREFIX}/jobs/{job_id}/log"]
    assert sum(1 for line in messages if line.startswith(b"$ opkg install")) >= 2, "the job did not retry"
    fractions = [p["fraction"] for p in recorder.json_on(f"{PREFIX}/jobs/{job_id}/progress")
                 if p["fraction"] is not None]
    assert len(fractions) >= 4 and fractions == sorted(fractions), fractions


def test_a_command_published_while_the_daemon_is_away_is_not_run_later(broker, recorder, start_daemon):
    """The documented choice (docs/mqtt.md): commands are live; roll-outs are durable."""
    daemon = start_daemon(mqtt_args(broker, "mqtt.commands=1"))
    recorder.wait_for(lambda msgs: any(p == b"online" for _, p, _ in msgs))
    assert daemon.stop() == 0
    recorder.publish(f"{PREFIX}/jobs/submit", json.dumps({"ref": "while-away", "job": "install",
                                                          "packages": ["tool-c"]}))
    count = len(recorder.messages)
    daemon.start()
    recorder.wait_for(lambda msgs: any(p == b"online" for _, p, _ in msgs[count:]))
    with pytest.raises(AssertionError):
        recorder.wait_for(lambda msgs: any(t.endswith("/reply/while-away") for t, _, _ in msgs), timeout=2)
    assert daemon.client().list()["total"] == 0


def test_an_unreadable_ref_never_shares_the_topic_of_a_valid_ref(broker, recorder, start_daemon):
    daemon = start_daemon(mqtt_args(broker, "mqtt.commands=1"))
    recorder.wait_for(lambda msgs: any(p == b"online" for _, p, _ in msgs))
    recorder.publish(f"{PREFIX}/jobs/cancel", json.dumps({"ref": "error", "job_id": "nope"}))
    for bad in (b"\xff not utf-8", json.dumps({"ref": "bad ref!", "job_id": "x"}),
                json.dumps({"ref": "\ud800", "job_id": "x"}), b'{"ref": NaN}'):
        recorder.publish(f"{PREFIX}/jobs/cancel", bad)
    recorder.wait_for(lambda msgs: len([t for t, _, _ in msgs if t == f"{PREFIX}/jobs/reply"]) == 4)
    named = recorder.json_on(f"{PREFIX}/jobs/reply/error")
    assert [(a["ref"], a["code"]) for a in named] == [("error", "unknown_job")]
    unreadable = recorder.json_on(f"{PREFIX}/jobs/reply")
    assert all(a["ref"] is None and a["ok"] is False for a in unreadable)
    assert sorted(a["code"] for a in unreadable) == ["invalid_json", "invalid_json", "invalid_json",
                                                      "invalid_request"]
    assert daemon.client().ping()["pong"] is True


def test_the_topic_table_lists_every_topic_the_daemon_uses():
    import pathlib
    import re

    from pineapple.mqtt.topics import Topics

    docs = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "mqtt.md").read_text()
    documented = set(re.findall(r"^\| `(P/[^`]+)` \|", docs, flags=re.M))
    t = Topics("P")
    used = {t.status, t.state("<job_id>"), t.progress("<job_id>"), t.log("<job_id>"), t.submit, t.cancel,
            t.reply("<ref>"), t.reply(None), t.notifications, t.rollout("<id>"), t.rollout_result("<id>")}
    assert documented == used
    assert t.reply(None) != t.reply("error")
