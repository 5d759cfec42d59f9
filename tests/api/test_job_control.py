"""Issue 9 over the real socket: restart with lineage, job types, hooks,
paged logs, list filters, hold/release — and their refusal cases."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pineapple.api.protocol import ApiError
from tests.api.helpers import wait_until

WAIT = 30


@pytest.fixture
def hook_daemon(start_daemon, tmp_path):
    """A daemon whose config allow-lists two hook commands."""
    marker = tmp_path / "hook-ran"
    config = tmp_path / "jobd.uci"
    config.write_text(
        "config hook 'note'\n"
        f"    list argv '{sys.executable}'\n"
        "    list argv '-c'\n"
        "    list argv 'import os,sys; open(sys.argv[1],\"a\").write(os.environ[\"PINEAPPLE_JOB_STATE\"] + \" \""
        " + os.environ[\"PINEAPPLE_JOB_PACKAGES\"] + \"\\n\"); print(\"noted\")'\n"
        f"    list argv '{marker}'\n"
        "config hook 'broken'\n"
        "    list argv '/bin/sh'\n"
        "    list argv '-c'\n"
        "    list argv 'echo going wrong >&2; exit 3'\n")
    daemon = start_daemon(["--config", str(config)])
    return daemon, marker


# ------------------------------------------------------------------ restart
def test_restart_creates_a_linked_child_that_survives_a_daemon_restart(daemon):
    client = daemon.client()
    first = client.install(["failpkg"])["job_id"]
    assert client.wait(first, timeout=WAIT)["state"] == "failed"
    again = client.restart(first)
    assert again["parent_id"] == first and again["job_id"] != first and again["duplicate"] is False
    child = client.wait(again["job_id"], timeout=WAIT)
    assert child["state"] == "failed" and child["error_code"] == "script_failed"
    daemon.restart()
    client = daemon.client()
    parent, child = client.get(first), client.get(again["job_id"])
    assert (parent["child_id"], child["parent_id"]) == (again["job_id"], first)
    assert child["params"]["packages"] == ["failpkg"]


def test_restart_refusals(daemon):
    client = daemon.client()
    held = client.install(["tool-a"], hold=True)["job_id"]
    with pytest.raises(ApiError) as err:
        client.restart(held)
    assert err.value.code == "job_active"
    with pytest.raises(ApiError) as err:
        client.restart("no-such-job")
    assert err.value.code == "unknown_job"


# ---------------------------------------------------------------- job types
def test_job_type_catalogue(daemon):
    catalogue = {t["name"]: t for t in daemon.client().job_types()}
    assert {"install", "uninstall", "update"} <= set(catalogue)
    assert "packages" in catalogue["install"]["params"] and catalogue["install"]["description"]
    with pytest.raises(ApiError) as err:
        daemon.client().submit("pineapple.daemon.main", packages=["x"])  # never imports anything
    assert err.value.code == "unknown_job_type"


# -------------------------------------------------------------------- hooks
def test_success_and_failure_hooks_run_allow_listed_commands(hook_daemon):
    daemon, marker = hook_daemon
    client = daemon.client()
    ok = client.install(["tool-a"], on_success=[{"command": "note"}], on_failure=[{"command": "broken"}])
    done = client.wait(ok["job_id"], timeout=WAIT)
    assert done["state"] == "succeeded"
    assert marker.read_text() == "succeeded tool-a\n"
    log = client.get(ok["job_id"])["log"]
    assert "hook note: noted" in log


def test_a_failing_hook_never_changes_the_outcome(hook_daemon):
    daemon, marker = hook_daemon
    client = daemon.client()
    job = client.install(["tool-b"], on_success=[{"command": "broken"}, {"command": "note"}])
    assert client.wait(job["job_id"], timeout=WAIT)["state"] == "succeeded"
    log = client.get(job["job_id"])["log"]
    assert "hook broken: going wrong" in log
    assert any("hook command broken failed: exited with status 3" in line for line in log)
    assert marker.read_text() == "succeeded tool-b\n", "the next hook still ran"
    failed = client.install(["failpkg"], on_failure=[{"notify": "mqtt", "message": "install failed"}])
    final = client.wait(failed["job_id"], timeout=WAIT)
    assert (final["state"], final["error_code"]) == ("failed", "script_failed")
    assert any("hook notify mqtt failed: MQTT is not enabled" in line
               for line in client.get(failed["job_id"])["log"])


def test_a_failing_hook_is_one_line_in_the_daemon_log(hook_daemon):
    daemon, _ = hook_daemon
    client = daemon.client()
    job_id = client.install(["tool-c"], on_success=[{"command": "broken"}])["job_id"]
    client.wait(job_id, timeout=WAIT)
    wait_until(lambda: "hook command broken" in daemon.log(), what="the hook's log line")
    lines = [line for line in daemon.log().splitlines() if "hook command broken" in line]
    assert len(lines) == 1, lines
    assert job_id in lines[0] and "exited with status 3" in lines[0]
    assert "Traceback" not in daemon.log()


def test_hook_refusals(hook_daemon):
    daemon, _ = hook_daemon
    client = daemon.client()
    with pytest.raises(ApiError) as err:
        client.install(["tool-c"], on_success=[{"command": "rm -rf /"}])
    assert err.value.code == "unknown_hook"
    for bad in ([{"command": "note", "argv": ["x"]}], [{"shell": "reboot"}], "note", [{"notify": "email"}]):
        with pytest.raises(ApiError) as err:
            client.install(["tool-c"], on_success=bad)
        assert err.value.code == "invalid_field", bad
    assert client.list()["total"] == 0, "a refused submit queued something"


# ---------------------------------------------------------------- log pages
def test_log_pages(daemon):
    client = daemon.client()
    job_id = client.install(["myapp"])["job_id"]
    client.wait(job_id, timeout=WAIT)
    whole = client.log(job_id, limit=1000)
    assert whole["offset"] == 0 and whole["total"] == len(whole["lines"]) and not whole["truncated"]
    assert any(line.startswith("Configuring myapp") for line in whole["lines"])
    page = client.log(job_id, offset=2, limit=2)
    assert page["lines"] == whole["lines"][2:4] and page["next_offset"] == 4
    assert client.log(job_id, offset=whole["total"])["lines"] == []
    for bad in ({"offset": -1}, {"limit": 0}, {"limit": 5000}):
        with pytest.raises(ApiError) as err:
            client.request("log", job_id=job_id, **bad)
        assert err.value.code == "invalid_field"


# --------------------------------------------------------------- list filters
def test_list_filters_newest_first_paged(daemon):
    client = daemon.client()
    ids = [client.install([name])["job_id"] for name in ("tool-a", "tool-b", "nosuchpkg")]
    update = client.update()["job_id"]
    for job_id in [*ids, update]:
        client.wait(job_id, timeout=WAIT)
    everything = client.list()
    assert [job["job_id"] for job in everything["jobs"]] == [update, *reversed(ids)]
    assert client.list(type="install")["total"] == 3
    assert [j["job_id"] for j in client.list(package="tool-b")["jobs"]] == [ids[1]]
    assert [j["job_id"] for j in client.list(state="failed")["jobs"]] == [ids[2]]
    page = client.list(type="install", offset=1, limit=1)
    assert page["total"] == 3 and [j["job_id"] for j in page["jobs"]] == [ids[1]]


# --------------------------------------------------------------- hold/release
def test_held_jobs_run_only_when_released(daemon):
    client = daemon.client()
    first = client.install(["tool-a"], hold=True)["job_id"]
    second = client.install(["tool-b"], hold=True)["job_id"]
    assert client.poll(first)["state"] == "held"
    assert client.installed(["tool-a"]) == {"tool-a": None}
    assert client.release(first)["released"] is True
    assert client.wait(first, timeout=WAIT)["state"] == "succeeded"
    assert client.poll(second)["state"] == "held", "a held job ran without release"
    assert client.hold(first)["held"] is False
    again = client.release(first)
    assert again["released"] is False and "only a held job" in again["message"]
    assert client.cancel(second)["cancelled"] is True
    assert client.poll(second)["state"] == "cancelled"


def test_hold_of_a_held_job_answers_false_with_a_message(daemon):
    client = daemon.client()
    held = client.install(["tool-a"], hold=True)["job_id"]
    again = client.hold(held)
    assert again["held"] is False and again["state"] == "held" and again["message"]
    assert client.poll(held)["state"] == "held"


def test_a_restart_answered_as_a_duplicate_links_both_records(daemon):
    client = daemon.client()
    first = client.install(["tool-a"])["job_id"]
    assert client.wait(first, timeout=WAIT)["state"] == "succeeded"
    active = client.install(["tool-a"], hold=True)["job_id"]  # equal to first, still active
    again = client.restart(first)
    assert (again["duplicate"], again["job_id"], again["parent_id"]) == (True, active, first)
    assert client.get(first)["child_id"] == active
    assert client.get(active)["parent_id"] == first
    daemon.restart()  # both links are in the journal
    client = daemon.client()
    assert (client.get(first)["child_id"], client.get(active)["parent_id"]) == (active, first)


def test_hold_a_queued_job(start_daemon):
    daemon = start_daemon(env={"OPKG_STANDIN_DOWNLOAD_DELAY": "0.5"})
    client = daemon.client()
    running = client.install(["myapp"])["job_id"]
    queued = client.install(["tool-c"])["job_id"]  # waits behind the opkg resource
    wait_until(lambda: client.poll(running)["state"] == "running", what="first job running")
    assert client.hold(queued)["held"] is True
    client.wait(running, timeout=WAIT)
    assert client.poll(queued)["state"] == "held"
    client.release(queued)
    assert client.wait(queued, timeout=WAIT)["state"] == "succeeded"


# ---------------------------------------------------------------------- CLI
def cli(daemon, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pineapple.cli.main", "--socket", str(daemon.socket), *args],
                          capture_output=True, text=True, timeout=60)


def test_cli_restart_types_log_hold_release(daemon):
    held = cli(daemon, "install", "tool-a", "--hold")
    job_id = held.stdout.split()[0]
    assert cli(daemon, "--json", "status", job_id).stdout.count('"state":"held"') == 1
    assert cli(daemon, "release", job_id).returncode == 0
    assert cli(daemon, "release", job_id).returncode == 1  # no longer held
    followed = cli(daemon, "log", job_id, "--follow")
    assert followed.returncode == 0 and "Configuring tool-a." in followed.stdout
    assert followed.stdout.count("Configuring tool-a.") == 1, "a line printed twice"
    again = cli(daemon, "restart", job_id, "--wait")
    assert again.returncode == 0
    types = cli(daemon, "types")
    assert "install:" in types.stdout and "packages:" in types.stdout
    listed = json.loads(cli(daemon, "--json", "list", "--type", "install", "--package", "tool-a").stdout)
    assert listed["total"] == 2 and listed["jobs"][0]["parent_id"] == job_id  # newest first: the restart
    held2 = cli(daemon, "install", "tool-b", "--hold").stdout.split()[0]
    assert cli(daemon, "hold", held2).returncode == 1  # already held: nothing done
    assert cli(daemon, "cancel", held2).returncode == 0
