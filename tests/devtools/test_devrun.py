"""``make run`` (devtools/devrun.py): its help, banner, kept or fresh sandbox."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from devtools import devrun

ROOT = Path(__file__).resolve().parents[2]


def test_help_is_whole_sentences():
    result = subprocess.run([sys.executable, "-m", "devtools.devrun", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    assert "Start pineapple-jobd against the opkg stand-in and a demo feed in a sandbox root" in result.stdout
    description = result.stdout.split("\n\n")[1]
    assert description.rstrip().endswith(".")  # not cut off mid-sentence
    for flag in ("--dir", "--fresh", "--download-delay"):
        assert flag in result.stdout


def test_make_run_fresh_passes_the_flag():
    plain = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    fresh = subprocess.run(["make", "-n", "run", "FRESH=1"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "-m devtools.devrun" in plain.stdout and "--fresh" not in plain.stdout
    assert "-m devtools.devrun --dir run --fresh" in fresh.stdout


def test_the_sandbox_is_kept_and_the_banner_says_how_to_start_afresh(tmp_path):
    sandbox, built = devrun.prepare(tmp_path, fresh=False)
    assert built and (tmp_path / "sandbox" / "opkg.conf").exists()
    marker = sandbox.root / "kept"
    marker.write_text("x")
    again, built_again = devrun.prepare(tmp_path, fresh=False)
    assert not built_again and marker.exists()
    kept_banner = devrun.banner(tmp_path / "jobd.sock", again, built_again, 1.5)
    assert "is the one from last time" in kept_banner and "make run FRESH=1" in kept_banner
    assert "each package download takes 1.5s" in kept_banner
    for line in ("install tcpdump --wait", "install mdk4 --wait", "pineapple-jobs list"):
        assert line in kept_banner
    fresh, built_fresh = devrun.prepare(tmp_path, fresh=True)
    assert built_fresh and not marker.exists()
    assert "from last time" not in devrun.banner(tmp_path / "jobd.sock", fresh, built_fresh, 0)


def test_the_download_delay(monkeypatch):
    monkeypatch.delenv("OPKG_STANDIN_DOWNLOAD_DELAY", raising=False)
    assert devrun._download_delay(None) == devrun.DEFAULT_DOWNLOAD_DELAY
    assert devrun._download_delay(0) == 0
    monkeypatch.setenv("OPKG_STANDIN_DOWNLOAD_DELAY", "0.2")
    assert devrun._download_delay(None) == 0.2  # a knob the user set wins over the default
    assert devrun._download_delay(3) == 3  # ...and the flag over both


def test_nothing_running_on_a_missing_or_dead_socket(tmp_path):
    assert devrun.running_pid(tmp_path / "none.sock") is None
    import socket

    dead = tmp_path / "dead.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(dead))
    listener.close()  # the file stays, nothing listens: a crashed daemon's leftover
    assert devrun.running_pid(dead) is None
