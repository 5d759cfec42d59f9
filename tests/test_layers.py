"""Imports point down the layers (README.md, Layout): nothing
below imports from above, not even lazily inside a function.

    base (errors, values, uci, logger, workers) <- jobs <- opkg <- api <- mqtt
        <- daemon, cli, modules, helpers (the top: they may use each other)
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pineapple"
RANK = {"(root)": 0, "errors": 0, "values": 0, "uci": 0, "logger": 0, "workers": 0, "record": 0,
        "jobs": 1, "opkg": 2, "api": 3, "mqtt": 4,
        "daemon": 5, "cli": 5, "modules": 5, "helpers": 5}


def _part(dotted: str) -> str:
    """The top-level part of ``pineapple.X.Y`` (``(root)`` for ``pineapple``)."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "(root)"


def _submodule(package: str, name: str) -> str:
    """``from package import name``: the module ``name`` if it is one, else ``package``."""
    folder = PACKAGE.parent.joinpath(*package.split("."))
    is_module = (folder / f"{name}.py").exists() or (folder / name / "__init__.py").exists()
    return f"{package}.{name}" if is_module else package


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every ``pineapple...`` module ``path`` imports, with its line."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if path.name == "__init__.py":
        here = here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [_submodule(target, a.name) for a in node.names]
            else:
                names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(name, node.lineno) for name in names if name.startswith("pineapple")]
    return found


def test_every_part_of_the_package_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    assert parts - set(RANK) == set(), "give the new part of pineapple/ a layer in RANK (and the docs)"


def test_nothing_imports_from_a_layer_above_it():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _part(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        for target, line in _imports(path):
            if RANK[_part(target)] > RANK[source]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert upward == []
