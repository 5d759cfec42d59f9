"""Fixtures of the opkg tests: a sandbox cloned per test from a template
built once per session (what tests/conftest.py's ``sandbox`` builds), and
the stand-in's call log."""
from __future__ import annotations

import pathlib

import pytest

from devtools.sandbox import Sandbox
from tests.opkg.helpers import CallLog, build_template


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    return build_template(tmp_path_factory)


@pytest.fixture
def sandbox(template: Sandbox, tmp_path: pathlib.Path) -> Sandbox:
    """Same contents as the shared conftest fixture, cloned from the template."""
    return template.clone(tmp_path / "sb")


@pytest.fixture
def calls(sandbox: Sandbox, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> CallLog:
    """Counts the opkg processes started after the sandbox was built.
    TMPDIR keeps opkg's temp dirs (and a killed run's debris) in the sandbox."""
    path = tmp_path / "opkg-calls.jsonl"
    monkeypatch.setenv("OPKG_STANDIN_CALL_LOG", str(path))
    monkeypatch.setenv("TMPDIR", str(sandbox.tmp_dir))
    return CallLog(path)
