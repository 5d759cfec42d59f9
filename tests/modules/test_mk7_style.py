"""Module backends of our own, written the way Hak5's real ones are
(tests/modules/mk7style/), as real processes against a real pineapple-jobd
and the opkg stand-in, driven over the MK7 protocol (request on one
connection, answer on the next; first connection closed or kept open).
Each name of the reference's table is used by one of them."""
from __future__ import annotations

import pathlib
import signal

import pytest

import pineapple.helpers.notification_helpers as notifier
from tests.conftest import POSTINST_FAIL
from tests.modules.helpers import ask, wait_for

STYLE = pathlib.Path(__file__).parent / "mk7style"


@pytest.fixture
def backend(start_module, daemon, sandbox, notification_socket, tmp_path):
    """``backend(name, **env)`` -> a running MK7-style module using the daemon."""

    def start(name, **env):
        base = {"PINEAPPLE_JOBD_SOCKET": str(daemon.socket), "CAPTURE_HOME": str(tmp_path / "capture"),
                "PORTAL_HOME": str(tmp_path / "portal"), "TOOLBOX_HOME": str(tmp_path / "toolbox")}
        return start_module(name, {**base, **env}, root=STYLE)

    return start


def payload(process, action, keep_open=False, **fields):
    answer = ask(process.socket, action, keep_open=keep_open, **fields)
    assert "payload" in answer, answer
    return answer["payload"]


def poll_until_complete(process, job_id, action="poll_job"):
    return wait_for(lambda: (lambda p: p if p["is_complete"] else None)(
        payload(process, action, job_id=job_id, remove_if_complete=False)), timeout=60, what=f"job {job_id}")


def test_capture_module_install_notify_and_captures_beside_opkg(backend, sandbox, notification_socket):
    capture = backend("capture")
    assert payload(capture, "check_dependencies") is False  # a bare boolean: the page reads it as is
    startup = payload(capture, "startup", keep_open=True)
    assert startup["has_dependencies"] is False and "lo" in startup["interfaces"]
    assert startup["last_job"] == {"job_id": None, "job_type": None, "job_info": None}

    job_id = payload(capture, "manage_dependencies", install=True)["job_id"]
    assert payload(capture, "rebind_last_job") == {"job_id": job_id, "job_type": "opkg", "job_info": None}
    done = poll_until_complete(capture, job_id)
    assert done == {"is_complete": True, "result": True, "job_error": None}  # job_error exactly null
    assert payload(capture, "check_dependencies") is True and "myapp" in sandbox.installed()
    assert notification_socket.next() == {"level": notifier.INFO, "message": "Capture finished installing.",
                                          "module_name": "capture"}

    # Two never-ending captures, then the uninstall still completes beside them.
    captures = [payload(capture, "start_capture")["job_id"] for _ in range(2)]
    wait_for(lambda: payload(capture, "running") == 2, what="both captures running")
    last = payload(capture, "startup")["last_job"]
    assert last["job_id"] == captures[-1] and last["job_type"] == "pcap" and last["job_info"].endswith(".pcap")
    removal = payload(capture, "manage_dependencies", install=False)["job_id"]
    answer = poll_until_complete(capture, removal, action="check_background_job")  # the uninstall dialog's poll
    assert answer == {"is_complete": True, "result": True, "job_error": None}
    assert payload(capture, "check_dependencies") is False and payload(capture, "running") == 2

    assert payload(capture, "stop_capture", job_id=captures[0]) is True
    assert poll_until_complete(capture, captures[0])["is_complete"]
    assert capture.stop(signal.SIGTERM) == 0  # the shutdown handler stops the other capture
    log = (capture.sock_dir / "capture.log").read_text()
    assert "raised" not in log and "Traceback" not in capture.output()


def test_failing_install_and_self_error_jobs(backend, notification_socket):
    capture = backend("capture", CAPTURE_PACKAGE="failpkg")
    job_id = payload(capture, "manage_dependencies", install=True)["job_id"]
    failed = poll_until_complete(capture, job_id)
    assert failed["is_complete"] and failed["result"] is False
    assert failed["job_error"].startswith("Unable to install failpkg: ")
    assert f"postinst script returned status {POSTINST_FAIL}" in failed["job_error"]
    note = notification_socket.next()
    assert note["level"] == notifier.ERROR and note["message"] == failed["job_error"]
    monitor = payload(capture, "start_monitor")["job_id"]
    assert poll_until_complete(capture, monitor) == {
        "is_complete": True, "result": False, "job_error": "Error starting monitor mode for input interface."}
    unknown = payload(capture, "poll_job", job_id="no-such-job")
    assert unknown["is_complete"] is True and "no-such-job" in unknown["job_error"]  # the page stops polling


def test_portal_module_list_install_and_installing_state(backend, sandbox):
    portal = backend("portal")
    assert payload(portal, "check_dependencies") == {"installed": False, "installing": False, "job_id": None}
    job_id = payload(portal, "manage_dependencies", install=True)["job_id"]
    state = payload(portal, "check_dependencies")
    assert state in ({"installed": False, "installing": True, "job_id": job_id},
                     {"installed": True, "installing": False, "job_id": None})  # done already on a fast machine
    assert poll_until_complete(portal, job_id)["job_error"] is None
    assert payload(portal, "check_dependencies") == {"installed": True, "installing": False, "job_id": None}
    assert {"myapp", "tool-a"} <= set(sandbox.installed())
    assert payload(portal, "status") == {"marker": True, "listed": True, "python_running": True}
    removal = payload(portal, "manage_dependencies", install=False)["job_id"]
    assert poll_until_complete(portal, removal)["result"] is True
    assert payload(portal, "status")["marker"] is False


def test_peek_module_endless_sniffer(backend):
    peek = backend("peek")
    job_id = payload(peek, "start")
    wait_for(lambda: payload(peek, "status")["sniffing"], what="sniffer process started")
    assert ask(peek.socket, "start") == {"error": "already running"}
    assert payload(peek, "stop") is True
    wait_for(lambda: payload(peek, "status") == {"running": False, "jobs": 0, "sniffing": False},
             what="sniffer removed")
    assert payload(peek, "poll_job", job_id=job_id)["is_complete"] is True


def test_blocklist_module_installs_inside_a_request(backend, sandbox):
    blocklist = backend("blocklist")
    assert payload(blocklist, "toolCheck") == "Not installed"
    assert payload(blocklist, "toolInstall", keep_open=True) == "ok"
    assert payload(blocklist, "toolCheck") == "ok" and "tool-b" in sandbox.installed()
    assert blocklist.stop() == 0
    broken = backend("blocklist", BLOCKLIST_PACKAGE="broken")
    message = payload(broken, "toolInstall")
    assert message.startswith("Error: Unable to install package: ") and "does-not-exist" in message


def test_toolbox_module_every_other_name(backend, tmp_path, sandbox, notification_socket):
    version = tmp_path / "version"
    version.write_text("2.1.3\n2023-06-01\n")
    toolbox = backend("toolbox", TOOLBOX_VERSION_FILE=str(version))
    home = tmp_path / "toolbox"
    assert (home / "started").read_text() == "yes"  # register_startup_handler
    assert payload(toolbox, "fields", who="me", get="field named get") == {
        "dict_get": "me", "getattr": "me", "keys": ["action", "get", "who"]}
    assert payload(toolbox, "fields")["dict_get"] == "nobody"
    assert payload(toolbox, "bytes") == ['{"a": 1}', "[1]", True]
    assert payload(toolbox, "version") == {"version": "2.1.3", "build": "2023-06-01"}
    assert payload(toolbox, "internet", url="http://127.0.0.1:9/") is False
    assert payload(toolbox, "grep", command="printf alpha\\nbeta", text="bet") == "beta\n"
    assert "error" in ask(toolbox.socket, "uci", key="demo.main.name")  # no uci here: an error answer
    for level, number in (("success", notifier.SUCCESS), ("warn", notifier.WARN), ("other", notifier.OTHER)):
        assert payload(toolbox, "notify", message=f"a {level}", level=level) is True
        assert notification_socket.next() == {"level": number, "message": f"a {level}", "module_name": "toolbox"}
    job_id = payload(toolbox, "echo_job", text="echoed")
    wait_for(lambda: payload(toolbox, "poll_echo", job_id=job_id)["is_complete"], what="echo job")
    assert payload(toolbox, "poll_echo", job_id=job_id) == {
        "is_runner": True, "is_complete": True, "result": "echoed", "manager": "toolbox"}
    assert payload(toolbox, "remove_package", package="myapp") == [True, "Package is not installed"]
    assert payload(toolbox, "update_lists") == [True, "Success"]
    assert payload(toolbox, "log_line", text="hello") is True
    wait_for(lambda: "toolbox says hello" in (toolbox.sock_dir / "toolbox-helpers.log").read_text(),
             what="the get_logger line")
    assert toolbox.stop(signal.SIGTERM) == 0
    assert (home / "shutdown-signal").read_text() == str(int(signal.SIGTERM))  # shutdown(sig, frame) overridden
    assert (home / "no-argument-handler-ran").read_text() == "yes"


def test_without_the_daemon_opkg_runs_in_the_module(start_module, sandbox, tmp_path):
    """No pineapple-jobd: the same module installs with opkg in its own process."""
    env = {"PINEAPPLE_JOBD_SOCKET": str(tmp_path / "nobody.sock"), "CAPTURE_HOME": str(tmp_path / "capture"),
           "PINEAPPLE_JOBD_OPKG_BINARY": str(sandbox.opkg_path), "PINEAPPLE_JOBD_OPKG_OFFLINE_ROOT": str(sandbox.root),
           "PINEAPPLE_JOBD_OPKG_CONF": str(sandbox.conf),
           **{k: v for k, v in sandbox.env().items() if k in ("PATH", "TMPDIR")}}
    capture = start_module("capture", env, root=STYLE)
    assert payload(capture, "check_dependencies") is False
    job_id = payload(capture, "manage_dependencies", install=True)["job_id"]
    assert poll_until_complete(capture, job_id) == {"is_complete": True, "result": True, "job_error": None}
    assert payload(capture, "check_dependencies") is True and "myapp" in sandbox.installed()
