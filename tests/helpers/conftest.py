"""``opkg_mode``: the opkg helpers against a real pineapple-jobd, or with no
daemon (opkg run in the test process), on the same kind of sandbox."""
from __future__ import annotations

import os
import tempfile

import pytest

from devtools.sandbox import Sandbox
from tests.modules.conftest import sandbox, sandbox_template  # noqa: F401  (cheap clones of one feed)


class OpkgMode:
    """Where the helpers' opkg runs in one test: ``via`` is "daemon" or "local"."""

    def __init__(self, via: str, sandbox: Sandbox, daemon: object = None) -> None:  # noqa: F811
        self.via = via
        self.sandbox = sandbox
        self.daemon = daemon


@pytest.fixture(params=["daemon", "local"])
def opkg_mode(request: pytest.FixtureRequest, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> OpkgMode:  # noqa: F811  (the fixture imported above)
    """The helpers see a running daemon on ``$PINEAPPLE_JOBD_SOCKET``, or
    nothing listening there and the daemon's opkg settings in the environment
    (as /etc/config/pineapple-jobd would give them on a device)."""
    for name, value in sandbox.env().items():
        if name in ("PATH", "TMPDIR"):
            monkeypatch.setenv(name, value)
    if request.param == "daemon":
        daemon = request.getfixturevalue("daemon")
        monkeypatch.setenv("PINEAPPLE_JOBD_SOCKET", str(daemon.socket))
        return OpkgMode("daemon", sandbox, daemon)
    nowhere = os.path.join(tempfile.gettempdir(), f"pj-none-{os.getpid()}.sock")
    monkeypatch.setenv("PINEAPPLE_JOBD_SOCKET", nowhere)
    monkeypatch.setenv("PINEAPPLE_JOBD_OPKG_BINARY", str(sandbox.opkg_path))
    monkeypatch.setenv("PINEAPPLE_JOBD_OPKG_OFFLINE_ROOT", str(sandbox.root))
    monkeypatch.setenv("PINEAPPLE_JOBD_OPKG_CONF", str(sandbox.conf))
    return OpkgMode("local", sandbox)
