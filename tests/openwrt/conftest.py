"""Fixtures: one build and one installed sandbox per target Python and
session (cloned per test that changes it)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devtools.sandbox import Sandbox
from tests.openwrt.helpers import REPO, TARGETS, build_ours, make_sandbox, target_interpreter


@pytest.fixture(scope="session", params=TARGETS, ids=[f"py{v}" for v in TARGETS])
def target(request: pytest.FixtureRequest) -> str:
    """The target Python X.Y (its release feed is tools/releases.py's)."""
    target_interpreter(request.param)
    return request.param


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, target: str) -> dict[str, Path]:
    """Both packages as `make ipk` builds them: name -> .ipk."""
    return build_ours(tmp_path_factory.mktemp("ipk"), target)


@pytest.fixture(scope="session")
def built_ipk(built: dict[str, Path]) -> Path:
    return built["pineapple-jobd"]


@pytest.fixture(scope="session")
def feed_template(tmp_path_factory: pytest.TempPathFactory, built: dict[str, Path], target: str) -> Sandbox:
    """The release feed + ours; nothing but libc installed."""
    return make_sandbox(tmp_path_factory.mktemp("feed") / "sb", built, target)


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


SNAPSHOT_PARTS = ("setup.py", "README.md", "LICENSE", "Makefile", "pineapple", "tools", "devtools", "openwrt")


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
