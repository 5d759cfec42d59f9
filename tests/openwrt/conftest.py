"""Fixtures: one .ipk build and one installed sandbox per session (cloned per
test that changes it)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devtools.sandbox import Sandbox
from tests.openwrt.helpers import REPO, make_sandbox
from tools import mkipk


@pytest.fixture(scope="session")
def built_ipk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as `make ipk` builds it."""
    return mkipk.build(tmp_path_factory.mktemp("ipk"))


@pytest.fixture(scope="session")
def feed_template(tmp_path_factory: pytest.TempPathFactory, built_ipk: Path) -> Sandbox:
    """Stub dependencies + the .ipk in a feed; nothing but libc installed."""
    return make_sandbox(tmp_path_factory.mktemp("feed") / "sb", built_ipk)


@pytest.fixture(scope="session")
def installed_template(tmp_path_factory: pytest.TempPathFactory, feed_template: Sandbox) -> Sandbox:
    """The template with pineapple-jobd installed."""
    sandbox = feed_template.clone(tmp_path_factory.mktemp("installed") / "sb")
    sandbox.run("install", "pineapple-jobd", check=True)
    return sandbox


@pytest.fixture
def feed(tmp_path: Path, feed_template: Sandbox) -> Sandbox:
    return feed_template.clone(tmp_path / "sb")


@pytest.fixture
def installed(tmp_path: Path, installed_template: Sandbox) -> Sandbox:
    return installed_template.clone(tmp_path / "sb")


SNAPSHOT_PARTS = ("setup.py", "Makefile", "pineapple", "tools", "devtools", "openwrt")


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    """A copy of what the build reads, so that engineers editing the checkout
    meanwhile cannot make two builds differ."""
    target = tmp_path / "repo"
    target.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in SNAPSHOT_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, target / part, ignore=ignore)
        else:
            shutil.copy2(source, target / part)
    return target
