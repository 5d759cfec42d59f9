"""How OpenWrt splits the Python standard library into packages.

From openwrt/packages lang/python/python3/files/python3-package-*.mk (the
files each sub-package takes out of python3-light) and the module table of
lang/python/python3-find-stdlib-depends.sh. Top-level import names only;
``_ssl``/``_hashlib`` stand for python3-openssl (ssl.py stays in
python3-light but cannot import without ``_ssl``; hashlib falls back to its
built-in algorithms, as the script notes).
"""
from __future__ import annotations

# sub-package -> top-level modules it holds
SUBPACKAGE_MODULES: dict[str, frozenset[str]] = {
    "python3-asyncio": frozenset({"asyncio"}),
    "python3-cgi": frozenset({"cgi"}),
    "python3-cgitb": frozenset({"cgitb"}),
    "python3-codecs": frozenset({"unicodedata", "_codecs_cn", "_codecs_hk", "_codecs_iso2022",
                                 "_codecs_jp", "_codecs_kr", "_codecs_tw"}),
    "python3-ctypes": frozenset({"ctypes", "_ctypes"}),
    "python3-dbm": frozenset({"dbm", "_dbm", "_gdbm"}),
    "python3-decimal": frozenset({"decimal", "_decimal"}),
    "python3-distutils": frozenset({"distutils"}),
    "python3-email": frozenset({"email"}),
    "python3-lib2to3": frozenset({"lib2to3"}),
    "python3-logging": frozenset({"logging"}),
    "python3-lzma": frozenset({"lzma", "_lzma"}),
    "python3-multiprocessing": frozenset({"multiprocessing", "_multiprocessing"}),
    "python3-ncurses": frozenset({"curses", "_curses", "_curses_panel"}),
    "python3-openssl": frozenset({"ssl", "_ssl", "_hashlib"}),
    "python3-pydoc": frozenset({"doctest", "pydoc", "pydoc_data"}),
    "python3-readline": frozenset({"readline"}),
    "python3-sqlite3": frozenset({"sqlite3", "_sqlite3"}),
    "python3-unittest": frozenset({"unittest"}),
    "python3-urllib": frozenset({"urllib"}),
    "python3-uuid": frozenset({"uuid", "_uuid"}),
    "python3-venv": frozenset({"venv"}),
    "python3-webbrowser": frozenset({"webbrowser"}),
    "python3-xml": frozenset({"xml", "xmlrpc", "_elementtree", "pyexpat"}),
}

# Dependencies between sub-packages (their DEPENDS besides python3-light).
SUBPACKAGE_DEPENDS: dict[str, frozenset[str]] = {
    "python3-cgi": frozenset({"python3-email"}),
    "python3-cgitb": frozenset({"python3-cgi", "python3-pydoc"}),
    "python3-urllib": frozenset({"python3-email"}),
}

# Left out of every OpenWrt Python package (python3-light's filespec).
NEVER_SHIPPED = frozenset({"ensurepip", "idlelib", "tkinter", "turtledemo", "test", "_tkinter"})

# Import names whose blocking would be a false alarm: ssl.py itself is in
# python3-light; what python3-openssl adds is _ssl (and _hashlib).
_BLOCK_NAMES = {"python3-openssl": frozenset({"_ssl", "_hashlib"})}


def subpackage_of(module: str) -> str | None:
    """The sub-package holding a top-level module, None if python3-light has it."""
    for package, modules in SUBPACKAGE_MODULES.items():
        if module in modules:
            return package
    return None


def closure(packages: set[str], extra_depends: dict[str, set[str]] | None = None) -> set[str]:
    """``packages`` plus everything they depend on (sub-packages and, via
    ``extra_depends``, other packages' declared dependencies)."""
    graph = {name: set(deps) for name, deps in SUBPACKAGE_DEPENDS.items()}
    for name, deps in (extra_depends or {}).items():
        graph.setdefault(name, set()).update(deps)
    result: set[str] = set()
    pending = list(packages)
    while pending:
        name = pending.pop()
        if name not in result:
            result.add(name)
            pending.extend(graph.get(name, ()))
    return result


# Sub-packages a release does not have yet: their modules are in its
# python3-light (19.07's files/python3-package-*.mk; 21.02 added readline,
# 22.03 uuid, 23.05 venv).
NOT_SPLIT_YET: dict[str, frozenset[str]] = {
    "3.7": frozenset({"python3-readline", "python3-uuid", "python3-venv"}),
    "3.9": frozenset({"python3-uuid", "python3-venv"}),
    "3.10": frozenset({"python3-venv"}),
}


def blocked_modules(installed: set[str], python_version: str = "3.11") -> set[str]:
    """Top-level import names that are missing on a device of the release
    shipping ``python_version`` where only the ``installed`` packages (and
    python3-light) are present."""
    blocked = set(NEVER_SHIPPED)
    in_light = NOT_SPLIT_YET.get(python_version, frozenset())
    for package, modules in SUBPACKAGE_MODULES.items():
        if package not in installed and package not in in_light:
            blocked |= _BLOCK_NAMES.get(package, modules)
    return blocked
