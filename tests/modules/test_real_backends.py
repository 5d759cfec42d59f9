"""Hak5's real module backends on our library, driven over their socket
exactly as the MK7's API server drives them (tests.modules.helpers.exchange:
request on one connection, answer read from the next; first connection
closed, and once more kept open).

Hak5's code is never part of this repository. Point the test at extracted
copies of hak5/pineapple-modules and/or hak5/mk7-modules:

    PINEAPPLE_TEST_MK7_MODULES=/tmp/hak5   # holding pineapple-modules/ and/or mk7-modules/
    (each as `git archive` of the repository: NAME/projects/NAME/src/module.py)

Control run: with PINEAPPLE_TEST_MK7_LIBRARY=DIR (Hak5's own library, e.g.
the repository's Libraries/Python3) each backend also runs on *their*
library, which hard-codes /tmp/modules (bind-mounted onto the test's socket
directory in the backend's namespace). It must pass the same protocol checks
through the same client, which shows the client speaks the MK7 protocol as
Hak5's modules expect; the checks of what our library fixes are left out
there.

Each backend runs as a process in a private mount namespace whose /root is
an empty tmpfs (the backends make /root/.NAME history directories), with
a PATH where every tool they call (opkg, iw, tcpdump, ...) is a stub that
exits 1, and cwd a scratch copy of the device's /pineapple holding only
modules/NAME. Their opkg helpers either go through a real pineapple-jobd
(on the opkg stand-in's sandbox) or, with no daemon, read the same sandbox
in-process (pointed at it by the PINEAPPLE_JOBD_OPKG_* variables). Only
read-only actions are sent; each answer is judged by what the module's
page reads of it.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Any, Callable

import pytest

from devtools.sandbox import PackageSpec, Sandbox
from tests.conftest import feed_packages
from tests.modules.helpers import REPO, WAIT, ask, exchange, in_parallel, wait_for

ROOT_ENV = "PINEAPPLE_TEST_MK7_MODULES"
LIBRARY_ENV = "PINEAPPLE_TEST_MK7_LIBRARY"
HAK5 = "hak5-library"  # the control mode
HAK5_SOCKET_DIR = "/tmp/modules"
REPOS = ("pineapple-modules", "mk7-modules")
STUBBED_TOOLS = ("opkg", "iw", "iwconfig", "ifconfig", "ip", "tcpdump", "nmap", "mdk4", "hcxdumptool", "mtr",
                 "ipset", "iptables", "uci", "pgrep", "pkill", "killall", "ps", "grep", "wpa_supplicant",
                 "airmon-ng", "php-fpm", "nginx", "dnsmasq", "curl", "wget", "ping")

Check = Callable[[dict], bool]


def payload_is(kind: type) -> Check:
    return lambda answer: "payload" in answer and isinstance(answer["payload"], kind)


def answered(answer: dict) -> bool:
    """A JSON answer the front end can read: a payload, or a non-empty error."""
    return "payload" in answer or bool(answer.get("error"))


# Per backend: (action, fields, what the page needs of the answer); "{device}"
# in a field is the scratch copy of the device's /pineapple.
JOB_REF = {"job_id", "job_type", "job_info"}
ACTIONS: dict[str, list[tuple[str, dict[str, Any], Check]]] = {
    "cabinet": [("list_directory", {"directory": "{device}", "get_parent": False}, payload_is(dict)),
                ("read_file", {"file": "{device}/modules/cabinet/module.py"},
                 lambda a: "payload" in a and "Module(" in a["payload"])],
    "DNSspoof": [("get", {}, answered)],
    "ProxyHelper2": [("getBackups", {}, answered)],
    "wigle": [("check", {}, answered)],
    "locate": [("locate_ip", {"user_input": "192.0.2.1"}, answered)],  # no network: an error answer
    "MACInfo": [("check_mac", {"user_input": "00:13:37:a5:5e:00"}, answered)],
    "wpasec": [("get_api_key", {}, answered)],
    "DenyIP": [("ipsetCheck", {}, lambda a: a.get("payload") in ("ok", "Not installed"))],
    "httpeek": [("status", {}, answered)],
    "evilportal": [("check_dependencies", {},
                    lambda a: isinstance(a.get("payload"), dict) and a["payload"].get("installed") is False
                    and a["payload"].get("installing") is False),
                   ("list_portals", {}, answered), ("status", {}, answered)],
    "nmap": [("check_dependencies", {}, lambda a: a.get("payload") is False),
             ("rebind_last_job", {}, lambda a: isinstance(a.get("payload"), dict)
              and JOB_REF <= set(a["payload"])),
             ("list_scan_history", {}, payload_is(list))],
    "mtr": [("check_dependencies", {}, lambda a: a.get("payload") is False),
            ("rebind_last_job", {}, lambda a: isinstance(a.get("payload"), dict) and JOB_REF <= set(a["payload"]))],
}
for _capture in ("tcpdump", "mdk4", "hcxdumptool"):
    ACTIONS[_capture] = [
        ("check_dependencies", {}, lambda a: a.get("payload") is False),
        ("startup", {}, lambda a: isinstance(a.get("payload"), dict) and a["payload"].get("has_dependencies") is False
         and isinstance(a["payload"].get("interfaces"), list) and "last_job" in a["payload"]),
    ]
ACTIONS["mdk4"].append(("load_history", {}, answered))
ACTIONS["tcpdump"].append(("list_capture_history", {}, answered))
ACTIONS["hcxdumptool"].append(("list_capture_history", {}, answered))


# The packages the dependency round trip installs, by backend.
TOOL_PACKAGES = {"tcpdump": "tcpdump", "nmap": "nmap", "mdk4": "mdk4", "hcxdumptool": "hcxdumptool", "mtr": "mtr-json"}


@pytest.fixture(scope="module")
def tools_template(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    """The tests' feed plus the packages the real backends install."""
    extra = [PackageSpec(name, "1.0-1", depends=["libc"]) for name in TOOL_PACKAGES.values()]
    return Sandbox.create(tmp_path_factory.mktemp("real-backends") / "sb", packages=feed_packages() + extra,
                          installed=["libc"])


@pytest.fixture
def sandbox(tools_template: Sandbox, tmp_path: pathlib.Path) -> Sandbox:
    """Overrides the modules' sandbox (and so the daemon's) with the one above."""
    return tools_template.clone(tmp_path / "sb")


def _backends(modes: tuple[str, ...] = ("jobd", "in-process", HAK5), only: str = "") -> list[Any]:
    root = os.environ.get(ROOT_ENV)
    if not os.environ.get(LIBRARY_ENV):
        modes = tuple(m for m in modes if m != HAK5)
    if not root:
        return [pytest.param((None, None), marks=pytest.mark.skip(
            reason=f"set {ROOT_ENV} to a directory holding extracted hak5/pineapple-modules and/or "
                   "hak5/mk7-modules (git archive) to run Hak5's real backends"))]
    found = []
    for repo in REPOS:
        for script in sorted(pathlib.Path(root, repo).glob("*/projects/*/src/module.py")):
            if only in ("", script.parts[-3]):
                found += [pytest.param((script, mode), id=f"{repo}:{script.parts[-3]}:{mode}") for mode in modes]
    return found or [pytest.param((None, None), marks=pytest.mark.skip(reason=f"no backends found under {root}"))]


class Backend:
    """One real backend as a process, isolated as described above."""

    def __init__(self, script: pathlib.Path, scratch: pathlib.Path, sock_dir: pathlib.Path,
                 env: dict[str, str], library: str | None = None) -> None:
        self.library = library  # Hak5's library instead of ours (the control run)
        self.name = script.parts[-3]
        self.sock_dir = sock_dir
        self.socket = sock_dir / f"{self.name}.sock"
        self.device = scratch / "pineapple"
        scratch.mkdir()
        shutil.copytree(script.parent, self.device / "modules" / self.name)
        stubs = scratch / "stubs"
        stubs.mkdir()
        for tool in STUBBED_TOOLS:
            (stubs / tool).write_text("#!/bin/sh\nexit 1\n")
            (stubs / tool).chmod(0o755)
        (stubs / "python3").symlink_to(sys.executable)
        self.output = scratch / "output.txt"
        self.env = {"PATH": str(stubs), "PYTHONPATH": library or str(REPO), "HOME": "/root", "LANG": "C.UTF-8",
                    "PINEAPPLE_MODULE_SOCKET_DIR": str(sock_dir),
                    "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
                    "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", **env}
        self.proc: subprocess.Popen | None = None

    def start(self) -> Backend:
        script = f"modules/{self.name}/module.py"
        tools = {tool: shutil.which(tool) for tool in ("unshare", "sh", "mount", "mkdir")}
        mount = tools["mount"]
        steps = []
        # The interpreter may live under /root (pyenv): carry it over into the private /root.
        real = pathlib.Path(os.path.realpath(sys.executable))
        if real.parts[:2] == ("/", "root") and len(real.parts) > 3:
            keep, parked = pathlib.Path(*real.parts[:3]), self.device.parent / "parked"
            parked.mkdir()
            steps += [f"{mount} --bind {keep} {parked}", f"{mount} -t tmpfs tmpfs /root",
                      f"{tools['mkdir']} {keep}", f"{mount} --bind {parked} {keep}"]
        else:
            steps.append(f"{mount} -t tmpfs tmpfs /root")
        if self.library:  # their library serves /tmp/modules/NAME.sock, always
            steps.append(f"{mount} --bind {self.sock_dir} {HAK5_SOCKET_DIR}")
        command = [tools["unshare"], "-m", "--propagation", "private", tools["sh"], "-c",
                   " && ".join(steps) + ' && exec "$0" "$1"', sys.executable, script]
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(command, cwd=self.device, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        wait_for(self._listening, what=f"{self.name} to listen on {self.socket}")
        return self

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.text()}")
        return self.socket.exists()

    def fill(self, fields: dict[str, Any]) -> dict[str, Any]:
        return {k: v.replace("{device}", str(self.device)) if isinstance(v, str) else v for k, v in fields.items()}

    def text(self) -> str:
        return self.output.read_text(errors="replace")[-3000:]

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(WAIT)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)


@pytest.fixture
def backend(request, tmp_path: pathlib.Path, sock_dir: pathlib.Path, sandbox):
    script, mode = request.param
    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("unshare", "mount")):
        pytest.skip("needs root, unshare(1) and mount(8) to give each backend a private /root")
    library = os.environ.get(LIBRARY_ENV) if mode == HAK5 else None
    if library:
        os.makedirs(HAK5_SOCKET_DIR, exist_ok=True)  # the mount point (an empty directory on this machine)
        env = {}
    elif mode == "jobd":
        env = {"PINEAPPLE_JOBD_SOCKET": str(request.getfixturevalue("daemon").socket)}
    else:  # no daemon: the helpers run opkg (the stand-in) in the backend's process, on the same sandbox
        env = {"PINEAPPLE_JOBD_SOCKET": str(tmp_path / "no-jobd.sock"),
               "PINEAPPLE_JOBD_OPKG_BINARY": str(sandbox.opkg_path),
               "PINEAPPLE_JOBD_OPKG_OFFLINE_ROOT": str(sandbox.root), "PINEAPPLE_JOBD_OPKG_CONF": str(sandbox.conf)}
    started = Backend(script, tmp_path / "scratch", sock_dir, env, library)
    if started.name not in ACTIONS:
        pytest.fail(f"no read-only actions listed for backend {started.name}: add it to ACTIONS")
    try:
        yield started.start()
    finally:
        started.close()


@pytest.mark.parametrize("backend", _backends(), indirect=True)
def test_real_backend_answers_the_mk7_way(backend: Backend):
    answers = {}
    for keep_open in (False, True):
        for action, fields, check in ACTIONS[backend.name]:
            answer = ask(backend.socket, action, keep_open=keep_open, **backend.fill(fields))
            answers[(action, keep_open)] = answer
            assert check(answer), f"{backend.name} {action} (first connection kept open: {keep_open}): {answer}"
    if backend.library:  # the control run: their library answered our client; its defects are not ours to check
        backend.stop()
        return
    # What Hak5's own loop got wrong, now on their code: answered, and the module lives on.
    assert ask(backend.socket, "no_such_action")["error"].startswith("No action handler registered for action")
    assert "error" in json.loads(exchange(backend.socket, b"{}"))
    assert "error" in json.loads(exchange(backend.socket, b"not json at all"))
    action, fields, check = ACTIONS[backend.name][0]
    assert check(ask(backend.socket, action, **backend.fill(fields))), "no answers after the bad requests"
    assert backend.stop() == 0, backend.text()
    assert not backend.socket.exists()
    print(f"{backend.name}: " + "; ".join(f"{a}{' (kept open)' if k else ''} -> {json.dumps(v)[:100]}"
                                          for (a, k), v in answers.items()))


@pytest.mark.parametrize("backend", _backends(modes=("in-process",), only="cabinet"), indirect=True)
def test_real_backend_concurrent_requests_each_get_their_own_answer(backend: Backend, tmp_path: pathlib.Path):
    """Eight page requests at once (as from several tabs), on cabinet:
    list_directory of eight different directories."""
    for i in range(8):
        (backend.device / f"dir{i}").mkdir()
        (backend.device / f"dir{i}" / f"only-in-{i}").write_text("x")
    results = in_parallel(lambda i: [ask(backend.socket, "list_directory", directory=f"{backend.device}/dir{i}",
                                         get_parent=False) for _ in range(3)], 8)
    for i in range(8):
        for answer in results[i]:
            assert f"only-in-{i}" in json.dumps(answer), (i, answer)


@pytest.mark.parametrize("backend", [p for name in TOOL_PACKAGES for p in _backends(modes=("jobd", "in-process"),
                                                                                  only=name)], indirect=True)
def test_real_backend_installs_and_removes_its_dependency(backend: Backend, sandbox: Sandbox):
    """What their page does: check, install, poll_job every few seconds until
    complete with job_error null, check again; then uninstall, polled with
    check_background_job (the uninstall dialogs of nmap/tcpdump/hcxdumptool
    poll that name), and check again."""
    package = TOOL_PACKAGES[backend.name]

    def until_complete(action: str, job_id: str) -> dict:
        return wait_for(lambda: _complete(ask(backend.socket, action, job_id=job_id)), timeout=60, interval=0.2,
                        what=f"{backend.name} {action} {job_id}")

    assert ask(backend.socket, "check_dependencies") == {"payload": False}
    job_id = ask(backend.socket, "manage_dependencies", install=True)["payload"]["job_id"]
    done = until_complete("poll_job", job_id)
    assert done["job_error"] is None and done["result"] is True, done
    assert ask(backend.socket, "check_dependencies") == {"payload": True}
    assert sandbox.installed().get(package) == "1.0-1"
    job_id = ask(backend.socket, "manage_dependencies", install=False)["payload"]["job_id"]
    done = until_complete("check_background_job", job_id)
    assert done["job_error"] is None, done
    assert ask(backend.socket, "check_dependencies") == {"payload": False}
    assert backend.stop() == 0, backend.text()


def _complete(answer: dict) -> dict | None:
    assert "payload" in answer, answer
    return answer["payload"] if answer["payload"]["is_complete"] else None
