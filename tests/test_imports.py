"""Every module of the checkout imports on the Python running the tests.

``make test-matrix`` runs this on Python 3.7 and 3.13 as well: the cheapest
guard against a construct newer than 3.7 (a walrus, ``list[str]`` outside an
annotation, ``dataclass(slots=True)``, a module-level ``zoneinfo`` import)
in any file, including those whose tests only run on the default python3.
The imports run in a child process, so no module's side effects (logging
set-up, ``sys.path``) leak into this test session.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pineapple", "devtools", "tools", "tests")  # imported by dotted name
SCRIPTS = ("bench", "modules")  # scripts and module examples: loaded from their files

CHILD = r"""
import importlib, importlib.util, json, sys
failures = {}
for kind, name in json.loads(sys.argv[1]):
    try:
        if kind == "module":
            importlib.import_module(name)
        else:
            spec = importlib.util.spec_from_file_location("_imported_" + str(len(failures)), name)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except BaseException as exc:
        if type(exc).__name__ != "Skipped":  # pytest.importorskip at module level: a reasoned skip
            failures[name] = "%s: %s" % (type(exc).__name__, exc)
print(json.dumps(failures))
"""


def checkout_modules() -> list[tuple[str, str]]:
    found = []
    for top in PACKAGES:
        for path in sorted((REPO / top).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found.append(("module", ".".join(parts[:-1] if parts[-1] == "__init__" else parts)))
    for top in SCRIPTS:
        found.extend(("file", str(path)) for path in sorted((REPO / top).rglob("*.py"))
                     if path.name != "__init__.py")
    return found


def test_every_module_imports() -> None:
    modules = checkout_modules()
    assert len(modules) > 100, "the walk found too few modules"
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(modules)], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    failures = json.loads(child.stdout.splitlines()[-1])
    assert failures == {}, f"on Python {sys.version.split()[0]}: {failures}"
