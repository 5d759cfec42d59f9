"""Who may command a device: HMAC-SHA256 signed commands and roll-outs.

Unit tests of pineapple.mqtt.signing with an injected clock, then the real
daemon against a real broker: unsigned, forged, altered, replayed, stale and
misdirected commands are refused with a code and a log line, and nothing
runs (no job, no opkg run); a correctly signed command and roll-out succeed.
"""
from __future__ import annotations

import json
import os
import time

import pytest

from pineapple.api.protocol import ApiError
from pineapple.mqtt.signing import Verifier, sign
from tests.fixtures.mqtt import Recorder, wait_until
from tests.mqtt.conftest import fleet_cli, rollout_id_of

KEY = "correct horse battery staple 42"
TOPIC = "pineapple/pine1/jobs/submit"
COMMAND = {"ref": "r1", "job": "install", "packages": ["tool-a"]}


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def refusal(verifier: Verifier, topic: str, command: dict, live: bool = True) -> str:
    with pytest.raises(ApiError) as err:
        verifier.check(topic, command, live=live)
    return err.value.code


# ------------------------------------------------------------------ unit
def test_a_signed_command_passes_once_and_only_on_its_topic(tmp_path):
    clock = Clock()
    verifier = Verifier(KEY.encode(), 300, str(tmp_path), clock)
    signed = sign(KEY.encode(), TOPIC, COMMAND, now=clock.now)
    assert verifier.check(TOPIC, dict(signed)) == COMMAND
    assert refusal(verifier, TOPIC, dict(signed)) == "replayed"
    again = sign(KEY.encode(), TOPIC, COMMAND, now=clock.now)
    assert refusal(verifier, "pineapple/pine2/jobs/submit", again) == "bad_signature"  # another device
    assert refusal(verifier, "pineapple/pine1/jobs/cancel", again) == "bad_signature"  # another action
    # A restart remembers the nonces (state dir): the replay is still refused.
    assert refusal(Verifier(KEY.encode(), 300, str(tmp_path), clock), TOPIC, dict(signed)) == "replayed"


def test_forged_altered_unsigned_and_malformed_commands_are_refused():
    clock = Clock()
    verifier = Verifier(KEY.encode(), 300, None, clock)
    assert refusal(verifier, TOPIC, dict(COMMAND)) == "unsigned"
    forged = sign(b"not the key, but long enough", TOPIC, COMMAND, now=clock.now)
    assert refusal(verifier, TOPIC, forged) == "bad_signature"
    altered = sign(KEY.encode(), TOPIC, COMMAND, now=clock.now)
    altered["packages"] = ["tool-a", "evil"]
    assert refusal(verifier, TOPIC, altered) == "bad_signature"
    for field, value in (("ts", "now"), ("ts", True), ("nonce", "short"), ("nonce", "x" * 65), ("sig", "ABC")):
        broken = sign(KEY.encode(), TOPIC, COMMAND, now=clock.now)
        broken[field] = value
        assert refusal(verifier, TOPIC, broken) == "bad_signature", field


def test_stale_commands_are_refused_either_way_and_the_window_moves():
    clock = Clock()
    verifier = Verifier(KEY.encode(), 300, None, clock)
    assert refusal(verifier, TOPIC, sign(KEY.encode(), TOPIC, COMMAND, now=clock.now - 301)) == "stale"
    assert refusal(verifier, TOPIC, sign(KEY.encode(), TOPIC, COMMAND, now=clock.now + 301)) == "stale"
    edge = sign(KEY.encode(), TOPIC, COMMAND, now=clock.now - 299)
    assert verifier.check(TOPIC, dict(edge)) == COMMAND
    clock.now += 1000  # long after: the nonce is forgotten, and the command is stale anyway
    assert refusal(verifier, TOPIC, dict(edge)) == "stale"
    # A durable roll-out record: signature only, its age does not matter.
    record = sign(KEY.encode(), "pineapple/pine1/rollouts/r", {"rollout": "r", "job": {}}, now=clock.now - 10**6)
    assert verifier.check("pineapple/pine1/rollouts/r", record, live=False) == {"rollout": "r", "job": {}}


# ----------------------------------------------------- the real daemon
def signed_device(fleet_device, name: str = "pine1"):
    return fleet_device(name, f"mqtt.command_key={KEY}", "mqtt.command_max_age=300")


def test_only_correctly_signed_commands_run(broker, fleet_device):
    device = signed_device(fleet_device)
    prefix = "pineapple/pine1/jobs"
    recorder = Recorder(broker.port, [f"{prefix}/reply/#"])
    key = KEY.encode()
    good = sign(key, f"{prefix}/submit", {"ref": "good", "job": "install", "packages": ["tool-a"]})
    altered = sign(key, f"{prefix}/submit", {"ref": "altered", "job": "install", "packages": ["tool-b"]})
    altered["packages"] = ["tool-c"]
    cases = {
        "unsigned": {"ref": "unsigned", "job": "install", "packages": ["tool-b"]},
        "forged": sign(b"a guess at the key, 16+ chars", f"{prefix}/submit",
                       {"ref": "forged", "job": "install", "packages": ["tool-b"]}),
        "altered": altered,
        "stale": sign(key, f"{prefix}/submit", {"ref": "stale", "job": "install", "packages": ["tool-b"]},
                      now=time.time() - 3600),
        "elsewhere": sign(key, "pineapple/pine2/jobs/submit",
                          {"ref": "elsewhere", "job": "install", "packages": ["tool-b"]}),
    }
    try:
        for command in cases.values():
            recorder.publish(f"{prefix}/submit", json.dumps(command))
        recorder.publish(f"{prefix}/submit", json.dumps(good))
        recorder.publish(f"{prefix}/submit", json.dumps(good))  # the same bytes again: a replay
        recorder.wait_for(lambda msgs: len(msgs) == len(cases) + 2)
        replies = {}
        for _, payload, _ in recorder.messages:
            answer = json.loads(payload)
            replies.setdefault(answer["ref"], []).append(answer)
    finally:
        recorder.close()
    codes = {ref: [a.get("code") for a in answers] for ref, answers in replies.items()}
    assert codes == {"unsigned": ["unsigned"], "forged": ["bad_signature"], "altered": ["bad_signature"],
                     "stale": ["stale"], "elsewhere": ["bad_signature"], "good": [None, "replayed"]}
    job_id = replies["good"][0]["payload"]["job_id"]
    assert device.daemon.client().wait(job_id, timeout=30)["state"] == "succeeded"
    assert device.daemon.client().list()["total"] == 1, "a refused command queued a job"
    assert device.installs("tool-a") == 1 and device.installs("tool-b") == 0 and device.installs("tool-c") == 0
    log = device.daemon.log()
    for ref, code in (("unsigned", "unsigned"), ("forged", "bad_signature"), ("stale", "stale"),
                      ("good", "replayed")):
        assert any(f"'{ref}'" in line and f"({code})" in line and "refusing submit command" in line
                   for line in log.splitlines()), (ref, code)


def test_a_replay_after_the_daemon_restarts_is_refused(broker, fleet_device):
    device = signed_device(fleet_device)
    prefix = "pineapple/pine1/jobs"
    command = sign(KEY.encode(), f"{prefix}/cancel", {"ref": "c1", "job_id": "nope"})
    recorder = Recorder(broker.port, [f"{prefix}/reply/c1"])
    try:
        recorder.publish(f"{prefix}/cancel", json.dumps(command))
        recorder.wait_for(lambda msgs: len(msgs) == 1)
        device.daemon.restart()
        device.wait_online()
        recorder.publish(f"{prefix}/cancel", json.dumps(command))
        recorder.wait_for(lambda msgs: len(msgs) == 2)
        assert [json.loads(p)["code"] for _, p, _ in recorder.messages] == ["unknown_job", "replayed"]
    finally:
        recorder.close()


def test_roll_outs_to_a_signing_device_must_be_signed(broker, fleet_device, tmp_path):
    device = signed_device(fleet_device)
    unsigned = fleet_cli(broker, "install", "tool-a", "--devices", "pine1", "--wait-timeout", "20")
    assert unsigned.returncode == 1 and "unsigned" in unsigned.stdout, unsigned.stdout
    forged_key = tmp_path / "wrong.key"
    forged_key.write_text("this is not the devices' key\n")
    forged = fleet_cli(broker, "install", "tool-a", "--devices", "pine1", "--wait-timeout", "20",
                       "--command-key-file", str(forged_key))
    assert forged.returncode == 1 and "bad_signature" in forged.stdout, forged.stdout
    assert device.installs("tool-a") == 0 and device.daemon.client().list()["total"] == 0
    key_file = tmp_path / "fleet.key"
    key_file.write_text(KEY + "\n")
    os.chmod(key_file, 0o600)
    signed = fleet_cli(broker, "install", "tool-a", "--devices", "pine1", "--wait-timeout", "30",
                       "--command-key-file", str(key_file))
    assert signed.returncode == 0, signed.stdout + signed.stderr
    assert device.installs("tool-a") == 1
    # The signed record is retained: a restart neither refuses it nor applies it again.
    device.daemon.restart()
    device.wait_online()
    rollout = rollout_id_of(signed.stdout)
    assert fleet_cli(broker, "status", rollout).returncode == 0
    assert device.installs("tool-a") == 1
    assert "refusing roll-out" in device.daemon.log()


def test_a_forged_record_does_not_use_up_the_id_of_the_real_one(broker, fleet_device):
    device = signed_device(fleet_device)
    topic = "pineapple/pine1/rollouts/shared-id"
    recorder = Recorder(broker.port, [f"{topic}/result"])
    try:
        record = {"rollout": "shared-id", "job": {"job": "install", "packages": ["tool-b"]}}
        recorder.client.publish(topic, json.dumps(sign(b"forger's key, long enough", topic, record)),
                                qos=1, retain=True)
        recorder.wait_for(lambda msgs: any(json.loads(p)["error_code"] == "bad_signature" for _, p, _ in msgs))
        recorder.client.publish(topic, json.dumps(sign(KEY.encode(), topic, record)), qos=1, retain=True)
        recorder.wait_for(lambda msgs: any(json.loads(p)["state"] == "succeeded" for _, p, _ in msgs))
    finally:
        recorder.close()
    wait_until(lambda: device.installs("tool-b") == 1, what="the real roll-out applied")
