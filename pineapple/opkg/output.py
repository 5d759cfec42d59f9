"""Turning opkg's output into progress events, classified errors and an outcome.

opkg-lede prints progress and notices on stdout and collects its errors,
printing them to stderr at exit as a block::

    Collected errors:
     * FUNCTION: message

A few helpers (libbb's ``copy_file``, wget) write bare lines to stderr as they
happen, before that block. Text on stderr does not by itself mean failure, so
the exit code decides success; the text decides *why* something failed.

Every error is classified into one of the stable codes of
:mod:`pineapple.errors`. When several codes appear, the outcome's primary code
is the first of :data:`PRECEDENCE` present: root causes come before the
failures they cause (a busy lock means nothing ran; a full disk or a broken
download explains a later "Cannot install"), and the catch-all comes last.
Parsing uses plain string operations only, so importing this module compiles
no regular expressions.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import NamedTuple

from pineapple.errors import (
    CHECKSUM_MISMATCH,
    DOWNLOAD_FAILED,
    HAS_DEPENDENTS,
    INSUFFICIENT_SPACE,
    LOCK_BUSY,
    MISSING_DEPENDENCY,
    OPKG_FAILED,
    SCRIPT_FAILED,
    UNKNOWN_PACKAGE,
)
from pineapple.record import Record

# Progress stages reported by parse_progress_line.
INSTALLING = "installing"
UPGRADING = "upgrading"
DOWNLOADING = "downloading"
CONFIGURING = "configuring"
REMOVING = "removing"
UP_TO_DATE = "up_to_date"
UNKNOWN = "unknown"
UPDATED = "updated"
LIST_FAILED = "list_failed"
NOTHING_REMOVED = "nothing_removed"
NOTE = "note"

PRECEDENCE: tuple[str, ...] = (
    LOCK_BUSY,  # opkg did nothing at all; retry later
    INSUFFICIENT_SPACE,  # also explains failed downloads/extractions
    CHECKSUM_MISMATCH,  # corrupt index or package
    DOWNLOAD_FAILED,  # network / feed; stale lists also hide packages
    MISSING_DEPENDENCY,  # more specific than the "Unknown package" it causes
    UNKNOWN_PACKAGE,
    HAS_DEPENDENTS,
    SCRIPT_FAILED,  # the package is on disk but half-configured
    OPKG_FAILED,  # anything unrecognised
)
_RANK = {code: rank for rank, code in enumerate(PRECEDENCE)}

# Codes that mean failure even when opkg exits 0: opkg can ignore a write
# error from a full overlay (see the reference), but it must not pass silently.
_FAILS_DESPITE_RC0 = frozenset({INSUFFICIENT_SPACE})

# Provisional codes, resolved against the other errors by parse_errors.
_INCOMPATIBLE = "_incompatible"
_CANNOT_INSTALL = "_cannot_install"

_IPK_SUFFIXES = (".ipk", ".opk", ".deb")
_INDEX_NAMES = ("Packages.gz", "Packages", "Packages.sig")
_NOTICES = (
    "Existing conffile ",
    "Duplicate src declaration",
    "Duplicate dist declaration",
    "Duplicate option ",
    "Duplicate boolean option ",
    "Ignoring invalid line",
    "Ignoring config line with trailing garbage",
    "Offline root mode: not running ",
    "(offline root mode: not running ",
)
_MAX_MESSAGE = 2000


class ProgressEvent(NamedTuple):
    """One stdout line understood: ``stage`` (a constant above), the package
    (or feed, for list downloads) it concerns, and a ``detail``: the version
    for installing/upgrading/up_to_date, the URL for downloading/list_failed,
    the list file for updated, the dest for removing (``autoremove`` for an
    orphan), the whole line for note."""

    stage: str
    package: str | None = None
    detail: str | None = None


class OpkgError(NamedTuple):
    """One error opkg reported. ``code`` is a stable code from
    pineapple.errors, or None for a notice that is not a failure (a kept
    conffile, a duplicate config line). ``message`` keeps opkg's own line(s);
    ``related`` names other packages the error mentions (the dependents for
    has_dependents, the missing dependency for missing_dependency)."""

    code: str | None
    package: str | None
    message: str
    function: str | None = None
    related: tuple[str, ...] = ()


class OpkgOutcome(Record):
    """What one opkg run amounted to. ``code`` is None when ``ok``;
    ``failures`` maps each failed package to its code; ``dependents`` maps a
    package that could not be removed to the installed packages needing it."""

    def __init__(self, ok: bool, rc: int, code: str | None, message: str, errors: list[OpkgError] | None = None,
                 failures: dict[str, str] | None = None, dependents: dict[str, list[str]] | None = None,
                 suggests_update: bool = False) -> None:
        self.ok, self.rc, self.code, self.message = ok, rc, code, message
        self.errors: list[OpkgError] = errors if errors is not None else []
        self.failures: dict[str, str] = failures if failures is not None else {}
        self.dependents: dict[str, list[str]] = dependents if dependents is not None else {}
        self.suggests_update = suggests_update


# --------------------------------------------------------------- progress


def parse_progress_line(
    line: str, feed_names: Mapping[str, str] | None = None
) -> ProgressEvent | None:
    """Understand one stdout line of opkg, or return None.

    ``feed_names`` maps a feed URL (as in opkg.conf, without a trailing
    slash) to its name, so a list download reports the feed's name rather
    than the last directory of its URL."""
    text = line.strip()
    for parse in _LINE_PARSERS:
        event = parse(text, feed_names)
        if event is not None:
            return event
    return None


def package_from_url(url: str, feed_names: Mapping[str, str] | None = None) -> str | None:
    """The package an opkg download URL is for (``name_version_arch.ipk``), or
    the feed for a package index (``…/Packages.gz``); None if neither."""
    base_url, _, base = url.rstrip("/").rpartition("/")
    if base.endswith(_IPK_SUFFIXES):
        # opkg names cannot contain '_' (it separates name and version).
        return base.partition("_")[0] or None
    if base in _INDEX_NAMES:
        if feed_names and base_url in feed_names:
            return feed_names[base_url]
        return base_url.rpartition("/")[2] or None
    return None


def _installing(text: str, _feeds: Mapping[str, str] | None) -> ProgressEvent | None:
    body = _between(text, "Installing ", "...")
    if body is None:
        return None
    name, _, rest = body.partition(" (")
    version = rest.rpartition(") to ")[0]
    return ProgressEvent(INSTALLING, name, version or None)


def _upgrading(text: str, _feeds: Mapping[str, str] | None) -> ProgressEvent | None:
    body = _between(text, "Upgrading ", "...") or _between(text, "Downgrading ", "...")
    if body is None or " on " not in body:
        return None
    new_version = body.rpartition(" to ")[2]
    return ProgressEvent(UPGRADING, body.partition(" on ")[0], new_version or None)


def _downloading(text: str, feeds: Mapping[str, str] | None) -> ProgressEvent | None:
    url = _after(text, "Downloading ")
    if not url:
        return None
    return ProgressEvent(DOWNLOADING, package_from_url(url, feeds), url)


def _configuring(text: str, _feeds: Mapping[str, str] | None) -> ProgressEvent | None:
    name = _between(text, "Configuring ", ".")
    if not name or " " in name:
        return None
    return ProgressEvent(CONFIGURING, name)


def _removing(text: str, _feeds: Mapping[str, str] | None) -> ProgressEvent | None:
    body = _between(text, "Removing package ", "...")
    if body is not None:
        name, _, dest = body.partition(" from ")
        return ProgressEvent(REMOVING, name, dest or None)
    orphan = _between(text, "", " was autoinstalled and is now orphaned, removing.")
    if orphan:
        return ProgressEvent(REMOVING, orphan, "autoremove")
    return None


def _up_to_date(text: str, _feeds: Mapping[str, str] | None) -> ProgressEvent | None:
    body = _between(text, "Package ", " is up to date.")
    if body is not None:
        name, _, rest = body.partition(" (")
        return ProgressEvent(UP_TO_DATE, name, rest.partition(")")[0] or None)
    body = _between(text, "Package ", ".")
    if body is not None and " is already installed on " in body:
        return ProgressEvent(UP_TO_DATE, body.partition(" ")[0])
    body = _between(text, "Not downgrading package ", ".")
    if body is not None:
        installed = body.partition(" from ")[2].partition(" to ")[0]
        return ProgressEvent(UP_TO_DATE, body.partition(" ")[0], installed or None)
    return None


def _unknown(text: str, _feeds: Mapping[str, str] | None) -> ProgressEvent | None:
    name = _between(text, "Unknown package '", "'.")
    return ProgressEvent(UNKNOWN, name) if name else None


def _list_update(text: str, feeds: Mapping[str, str] | None) -> ProgressEvent | None:
    path = _after(text, "Updated list of available packages in ")
    if path:
        return ProgressEvent(UPDATED, path.rstrip("/").rpartition("/")[2], path)
    url = _after(text, "*** Failed to download the package list from ")
    if url:
        return ProgressEvent(LIST_FAILED, package_from_url(url, feeds), url)
    return None


def _nothing_removed(text: str, _feeds: Mapping[str, str] | None) -> ProgressEvent | None:
    return ProgressEvent(NOTHING_REMOVED) if text == "No packages removed." else None


def _offline_note(text: str, _feeds: Mapping[str, str] | None) -> ProgressEvent | None:
    # -V2 prefixes this INFO line with "pkg_run_script: "; older opkg wraps it in ().
    _, found, rest = text.partition("ffline root mode: not running ")
    if not found:
        return None
    script = rest.rstrip(".)")
    return ProgressEvent(NOTE, script.rpartition(".")[0] or None, text)


_LINE_PARSERS = (
    _installing,
    _upgrading,
    _downloading,
    _configuring,
    _removing,
    _up_to_date,
    _unknown,
    _list_update,
    _nothing_removed,
    _offline_note,
)


def _after(text: str, prefix: str) -> str | None:
    return text[len(prefix):] if text.startswith(prefix) else None


def _between(text: str, prefix: str, suffix: str) -> str | None:
    if len(text) < len(prefix) + len(suffix):
        return None
    if not (text.startswith(prefix) and text.endswith(suffix)):
        return None
    return text[len(prefix):len(text) - len(suffix)]


# ----------------------------------------------------------------- errors


class _Item:
    """One error entry of stderr, possibly with folded follow-up entries."""

    __slots__ = ("function", "body", "lines", "entries")

    def __init__(self, function: str | None, body: str, lines: list[str]) -> None:
        self.function, self.body, self.lines = function, body, lines
        self.entries: list[str] = []


def parse_errors(
    stderr: str,
    unknown_packages: Collection[str] = (),
    feed_names: Mapping[str, str] | None = None,
) -> list[OpkgError]:
    """Parse opkg's stderr into classified errors, in the order printed.

    ``unknown_packages`` are the names stdout called ``Unknown package 'X'.``;
    they turn the generic ``Cannot install package X.`` into unknown_package
    unless a dependency error explains it. Lines of one multi-line message
    (``Package X is depended upon by packages:`` and the names after it) are
    kept together as one error."""
    items = _fold(_split_items(stderr))
    provisional = [_classify(item, feed_names) for item in items]
    return _resolve(provisional, set(unknown_packages))


def suggests_update(errors: Iterable[OpkgError]) -> bool:
    """True when opkg hinted that its package lists are stale ("Perhaps you
    need to run 'opkg update'?", "Try 'opkg update'.")."""
    return any("'opkg update'" in error.message for error in errors)


def _split_items(stderr: str) -> list[list[str]]:
    """Group stderr lines: each `` * `` entry of the Collected errors block,
    or each bare line outside it; other lines continue the entry before."""
    items: list[list[str]] = []
    in_block = False
    for raw in stderr.splitlines():
        line = raw.rstrip()
        if not line.strip() or line.strip() == "*":
            continue
        if line == "Collected errors:":
            in_block = True
        elif line.startswith(" * "):
            items.append([line[3:]])
        elif items and (in_block or line[0].isspace()):
            items[-1].append(line.strip())
        else:
            items.append([line.strip()])
    return items


def _fold(raw_items: list[list[str]]) -> list[_Item]:
    """Join list entries (``\\tNAME``) and same-function follow-ups of a
    message ending in ':' to the item they belong to."""
    folded: list[_Item] = []
    for lines in raw_items:
        function, body = _split_function(lines[0])
        previous = folded[-1] if folded else None
        if previous is not None and _continues(previous, function, body):
            previous.lines.extend([body.strip(), *lines[1:]])
            if body[:1].isspace():
                previous.entries.append(body.strip())
            continue
        first = lines[0].strip()
        folded.append(_Item(function, body.strip(), [first, *lines[1:]]))
    return folded


def _continues(previous: _Item, function: str | None, body: str) -> bool:
    if body[:1].isspace():
        return True
    if function is None or function != previous.function:
        return False
    # A header ending in ':' owns the lines after it; the dependents warning
    # goes on with advice lines whether or not it lists the names inline.
    return previous.body.endswith(":") or " is depended upon by packages:" in previous.body


def _split_function(text: str) -> tuple[str | None, str]:
    head, sep, rest = text.partition(": ")
    if sep and head.isidentifier():
        return head, rest
    return None, text


def _error(item: _Item, code: str | None, package: str | None = None,
           related: tuple[str, ...] = ()) -> OpkgError:
    return OpkgError(code, package, "\n".join(item.lines), item.function, related)


def _classify(item: _Item, feeds: Mapping[str, str] | None) -> OpkgError:
    for classify in _CLASSIFIERS:
        error = classify(item, feeds)
        if error is not None:
            return error
    return _error(item, OPKG_FAILED)


def _lock(item: _Item, _feeds: Mapping[str, str] | None) -> OpkgError | None:
    if item.body.startswith("Could not lock "):
        return _error(item, LOCK_BUSY)
    return None


def _space(item: _Item, _feeds: Mapping[str, str] | None) -> OpkgError | None:
    body = item.body
    if body.startswith("Only have ") and " needs " in body:
        return _error(item, INSUFFICIENT_SPACE, _word_after(body, ", pkg "))
    if "No space left on device" in body:
        return _error(item, INSUFFICIENT_SPACE)
    return None


def _dependents(item: _Item, _feeds: Mapping[str, str] | None) -> OpkgError | None:
    body = item.body
    if " is depended upon by packages:" not in body:
        return None
    package = _word_after(body, "Package ")
    inline = body.partition(" is depended upon by packages:")[2].replace(",", " ").split()
    names = tuple(dict.fromkeys([*inline, *(entry.split()[0] for entry in item.entries)]))
    return _error(item, HAS_DEPENDENTS, package, names)


def _dependency(item: _Item, _feeds: Mapping[str, str] | None) -> OpkgError | None:
    body = item.body
    if body.startswith("cannot find dependency ") and " for " in body:
        missing, _, package = body[len("cannot find dependency "):].rpartition(" for ")
        return _error(item, MISSING_DEPENDENCY, package.strip(), (missing,))
    if "satisfy the following dependencies for " in body:
        package = body.partition("dependencies for ")[2].rstrip(":").strip()
        return _error(item, MISSING_DEPENDENCY, package or None, tuple(item.entries))
    if body.startswith("Packages for ") and "incompatible with the architectures" in body:
        return _error(item, _INCOMPATIBLE, _word_after(body, "Packages for "))
    return None


def _checksum(item: _Item, _feeds: Mapping[str, str] | None) -> OpkgError | None:
    body = item.body
    if "Checksum or size mismatch for package " in body:
        name = body.partition("for package ")[2].partition(" ")[0].rstrip(".")
        return _error(item, CHECKSUM_MISMATCH, name or None)
    if body.startswith("Package ") and ("sum mismatch" in body or "size mismatch" in body):
        return _error(item, CHECKSUM_MISMATCH, _word_after(body, "Package "))
    if body.startswith("Failed to verify the signature of "):
        return _error(item, CHECKSUM_MISMATCH)
    return None


def _script(item: _Item, _feeds: Mapping[str, str] | None) -> OpkgError | None:
    body = item.body
    if "script returned status " in body or "prerm script failed" in body:
        return _error(item, SCRIPT_FAILED, _quoted(body))
    if body.startswith("prerm script for package "):
        return _error(item, SCRIPT_FAILED, _quoted(body))
    if ".postinst returned " in body:
        return _error(item, SCRIPT_FAILED, body.partition(".postinst returned ")[0] or None)
    return None


def _download(item: _Item, feeds: Mapping[str, str] | None) -> OpkgError | None:
    body = item.body
    if body.startswith("Failed to download ") and ". Perhaps you need" in body:
        return _error(item, DOWNLOAD_FAILED, _word_after(body, "Failed to download "))
    if body.startswith(("Failed to download ", "Couldn't retrieve ")):
        url = body.split(" ")[3 if body.startswith("Failed") else 2].rstrip(",:.")
        return _error(item, DOWNLOAD_FAILED, package_from_url(url, feeds))
    if item.function == "copy_file" or "wget returned" in body:
        return _error(item, DOWNLOAD_FAILED, _package_in_text(body, feeds))
    if body.startswith("Check your network settings"):
        return _error(item, DOWNLOAD_FAILED)
    if " is not available from any configured src" in body:
        return _error(item, DOWNLOAD_FAILED, _word_after(body, "Package "))
    if body.startswith("Signature file is missing for "):
        return _error(item, DOWNLOAD_FAILED, _word_after(body, "missing for "))
    return None


def _unknown_error(item: _Item, _feeds: Mapping[str, str] | None) -> OpkgError | None:
    body = item.body
    if body.startswith("Cannot install package "):
        return _error(item, _CANNOT_INSTALL, _word_after(body, "install package "))
    for prefix in ("Cannot find package ", "Couldn't find package "):
        if body.startswith(prefix):
            return _error(item, UNKNOWN_PACKAGE, _word_after(body, prefix))
    name = _between(body, "Unknown package '", "'.")
    return _error(item, UNKNOWN_PACKAGE, name) if name else None


def _notice(item: _Item, _feeds: Mapping[str, str] | None) -> OpkgError | None:
    if item.body.startswith(_NOTICES):
        return _error(item, None)
    return None


_CLASSIFIERS = (_lock, _space, _dependents, _dependency, _checksum, _script,
                _download, _unknown_error, _notice)


def _resolve(errors: list[OpkgError], unknown: set[str]) -> list[OpkgError]:
    """Settle the provisional codes: the arch line and "Cannot install X"
    take missing_dependency when a dependency of X is missing, else
    unknown_package when opkg found no candidate for X."""
    missing = {e.package for e in errors if e.code == MISSING_DEPENDENCY}
    no_candidate = unknown | {e.package for e in errors if e.code == _INCOMPATIBLE}
    resolved = []
    for error in errors:
        if error.code in (_INCOMPATIBLE, _CANNOT_INSTALL):
            error = _settle(error, missing, no_candidate)
        resolved.append(error)
    return resolved


def _settle(error: OpkgError, missing: set[str | None], no_candidate: set[str | None]) -> OpkgError:
    if error.package in missing:
        code = MISSING_DEPENDENCY
    elif error.package in no_candidate:
        code = UNKNOWN_PACKAGE
    else:
        code = OPKG_FAILED
    return OpkgError(code, error.package, error.message, error.function, error.related)


def _word_after(text: str, marker: str) -> str | None:
    word = text.partition(marker)[2].split(" ", 1)[0]
    return word.rstrip(",:.") or None


def _quoted(text: str) -> str | None:
    return text.partition('"')[2].partition('"')[0] or None


def _package_in_text(text: str, feeds: Mapping[str, str] | None) -> str | None:
    for word in text.replace("`", " ").replace("'", " ").split():
        package = package_from_url(word.rstrip(",:."), feeds)
        if package:
            return package
    return None


# ---------------------------------------------------------------- outcome


def summarize(
    rc: int,
    stdout_lines: Iterable[str],
    stderr: str,
    feed_names: Mapping[str, str] | None = None,
) -> OpkgOutcome:
    """Decide what an opkg run amounted to from its exit code and output.

    Exit code 0 is success (stderr notices such as a kept conffile do not
    change that, nor does ``remove`` of a package that is not installed),
    unless opkg reported running out of space. On failure the primary
    ``code`` follows PRECEDENCE; ``message`` keeps opkg's own lines.

    If stderr was merged into stdout (opkg run through a pty), the
    ``Collected errors:`` block found in stdout is parsed as stderr."""
    lines = stdout_lines.splitlines() if isinstance(stdout_lines, str) else list(stdout_lines)
    lines, merged_block = _split_merged_block(lines)
    events = [(line.strip(), parse_progress_line(line, feed_names)) for line in lines]
    unknown = [event.package for _, event in events
               if event is not None and event.stage == UNKNOWN and event.package]
    errors = parse_errors(f"{stderr}\n{merged_block}", unknown, feed_names)
    errors += _stdout_errors(events, errors, unknown, rc)
    ok = rc == 0 and not any(error.code in _FAILS_DESPITE_RC0 for error in errors)
    return OpkgOutcome(
        ok=ok,
        rc=rc,
        code=None if ok else primary_code(errors),
        message=_message(rc, ok, errors),
        errors=errors,
        failures={} if ok else _failures(errors),
        dependents=_dependents_by_package(errors),
        suggests_update=suggests_update(errors),
    )


def _split_merged_block(lines: list[str]) -> tuple[list[str], str]:
    for index, line in enumerate(lines):
        if line.strip() == "Collected errors:":
            return lines[:index], "\n".join(text.rstrip("\r\n") for text in lines[index:])
    return lines, ""


def primary_code(errors: Iterable[OpkgError]) -> str:
    """The most specific code among ``errors`` (see PRECEDENCE);
    opkg_failed when none of them carries one."""
    codes = [error.code for error in errors if error.code in _RANK]
    return min(codes, key=_RANK.__getitem__, default=OPKG_FAILED)


def _stdout_errors(events: list[tuple[str, ProgressEvent | None]], errors: list[OpkgError],
                   unknown: list[str], rc: int) -> list[OpkgError]:
    """Errors only stdout tells of: a feed list that failed to download, and
    an unknown package whose stderr line was lost (e.g. opkg was killed)."""
    found = [OpkgError(DOWNLOAD_FAILED, event.package, line) for line, event in events
             if event is not None and event.stage == LIST_FAILED]
    explained = {error.package for error in errors}
    if rc != 0:
        found += [OpkgError(UNKNOWN_PACKAGE, name, f"Unknown package '{name}'.")
                  for name in unknown if name not in explained]
    return found


def _failures(errors: list[OpkgError]) -> dict[str, str]:
    failures: dict[str, str] = {}
    for error in errors:
        if error.package is None or error.code not in _RANK:
            continue
        known = failures.get(error.package)
        if known is None or _RANK[error.code] < _RANK[known]:
            failures[error.package] = error.code
    return failures


def _dependents_by_package(errors: list[OpkgError]) -> dict[str, list[str]]:
    return {error.package: list(error.related) for error in errors
            if error.code == HAS_DEPENDENTS and error.package}


def _message(rc: int, ok: bool, errors: list[OpkgError]) -> str:
    if ok:
        # With exit 0 whatever opkg printed to stderr was only a notice.
        return _with_lines("opkg succeeded with notices:", errors) if errors else "opkg succeeded"
    head = f"opkg was killed by signal {-rc}" if rc < 0 else f"opkg failed (exit {rc})"
    failing = [error for error in errors if error.code is not None]
    if not failing:
        return f"{head} without reporting an error"
    return _with_lines(f"{head}:", failing)


def _with_lines(head: str, errors: list[OpkgError]) -> str:
    # One line per opkg error, as opkg printed it: a UI shows them as they are.
    text = "\n".join([head, *(f" * {' '.join(error.message.split())}" for error in errors)])
    if len(text) <= _MAX_MESSAGE:
        return text
    return text[:_MAX_MESSAGE - 3] + "..."
