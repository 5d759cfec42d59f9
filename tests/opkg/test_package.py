"""pineapple.opkg's face: the names docs/opkg.md gives import from the
package itself, and importing it stays light (no sh, no job machinery)."""
from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

import pineapple.opkg

REPO = pathlib.Path(__file__).resolve().parents[2]
CHILD = """
import json, sys
import pineapple.opkg, pineapple.opkg.names
print(json.dumps(sorted(m for m in sys.modules if m == "sh" or m.startswith(("pineapple.jobs", "pineapple.opkg.")))))
"""


def test_the_job_classes_import_from_the_package():
    from pineapple.opkg import InstallDependenciesJob, UninstallDependenciesJob, UpdatePackageListsJob
    from pineapple.opkg.jobs import InstallDependenciesJob as Install

    assert InstallDependenciesJob is Install
    assert {InstallDependenciesJob.job_type, UninstallDependenciesJob.job_type,
            UpdatePackageListsJob.job_type} == {"install", "uninstall", "update"}


def test_every_public_name_resolves_and_unknown_names_fail_clearly():
    for name in pineapple.opkg.__all__:
        assert getattr(pineapple.opkg, name).__name__ == name
    assert set(pineapple.opkg.__all__) <= set(dir(pineapple.opkg))
    try:
        pineapple.opkg.NoSuchJob  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchJob" in str(exc)
    else:
        raise AssertionError("an unknown name resolved")


def test_the_names_docs_opkg_md_gives_are_exported():
    text = (REPO / "docs" / "opkg.md").read_text()
    named = set(re.findall(r"`([A-Z][A-Za-z]+(?:Job|System|Runner|Control|Settings))`", text))
    named |= set(re.findall(r"`(stop_process_group)", text))
    assert {"InstallDependenciesJob", "UninstallDependenciesJob", "UpdatePackageListsJob"} <= named
    assert named <= set(pineapple.opkg.__all__)


def test_importing_the_package_loads_neither_sh_nor_the_jobs():
    child = subprocess.run([sys.executable, "-c", CHILD], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == ["pineapple.opkg.names"]
