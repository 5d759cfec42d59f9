"""How the CLI shows things: tables (coloured on a terminal), job summaries,
hints for failures, and progress bars."""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from typing import IO, Any

BAR_WIDTH = 30

# ANSI SGR codes per job state; only used on a terminal (see use_colour).
STATE_STYLES = {"queued": "36", "held": "36", "running": "1;33", "succeeded": "32",
                "failed": "1;31", "cancelled": "35", "interrupted": "31"}
DIM, BOLD, ERROR = "2", "1", "31"

# What to try next, by error code: the CLI's word on a failed job or request.
HINTS = {
    "unknown_package": "check the package name; if it is new in the feed, refresh the package lists "
                       "with `pineapple-jobs update` and try again",
    "missing_dependency": "a dependency is in no feed: refresh the lists (`pineapple-jobs update`) "
                          "or add the feed that has it",
    "download_failed": "is the feed reachable? `pineapple-jobs update` shows which feed fails",
    "checksum_mismatch": "the package lists are out of date or the feed changed: `pineapple-jobs update`",
    "insufficient_space": "free some space, or install to another destination with --dest (e.g. sd)",
    "lock_busy": "another program (LuCI, a cron job) is using opkg: try again when it is done",
    "has_dependents": "remove the packages that depend on it too, or use --force",
    "timeout": "give it longer with --job-timeout SECONDS",
}


def dump_json(value: Any, out: IO[str] | None = None) -> None:
    out = sys.stdout if out is None else out
    out.write(json.dumps(value, indent=None, separators=(",", ":"), ensure_ascii=False) + "\n")


def use_colour(out: IO[str]) -> bool:
    """Colour only on a terminal, never when NO_COLOR is set (no-color.org) or TERM=dumb."""
    return _isatty(out) and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _isatty(out: IO[str]) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False


def paint(text: str, style: str | None, colour: bool) -> str:
    return f"\x1b[{style}m{text}\x1b[0m" if colour and style and text else text


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], colour: bool = False,
          styles: Sequence[Sequence[str | None]] | None = None, headers_shown: bool = True) -> str:
    """Aligned columns under ``headers``. ``styles`` (like ``rows``: an SGR
    code or None per cell) apply only with ``colour``; widths count the
    visible text."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in [list(headers), *cells]) for i in range(len(headers))]

    def fmt(row: list[str], row_styles: Sequence[str | None]) -> str:
        padded = [paint(cell, style, colour) + " " * (width - len(cell))
                  for cell, width, style in zip(row, widths, row_styles)]  # noqa: B905 (Python 3.7)
        return "  ".join(padded).rstrip()

    plain = [None] * len(headers)
    lines = [fmt(list(headers), [BOLD] * len(headers))] if headers_shown else []
    for index, row in enumerate(cells):
        lines.append(fmt(row, styles[index] if styles else plain))
    return "\n".join(lines)


def bar(fraction: float | None, width: int = BAR_WIDTH) -> str:
    filled = int(width * min(1.0, max(0.0, fraction or 0.0)))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def percent(fraction: float | None) -> str:
    return "  ?%" if fraction is None else f"{fraction * 100:3.0f}%"


def packages_of(job: dict[str, Any]) -> str:
    return " ".join((job.get("params") or {}).get("packages") or [])


def hint_for(code: str | None) -> str | None:
    return HINTS.get(code or "")


def describe_job(job: dict[str, Any], colour: bool = False) -> str:
    """A few human lines about a job summary or record: the state, progress
    while it runs, the error and what to try next when it failed."""
    state = str(job.get("state"))
    lines = [f"job {job.get('job_id')}  {job.get('type', '')}  {paint(state, STATE_STYLES.get(state), colour)}"]
    progress = job.get("progress") or {}
    # A failed job's last progress ("0% installing x") reads as if it were still going: the error says it.
    if not job.get("job_error") and (progress.get("fraction") is not None or progress.get("message")):
        lines.append(f"  progress: {percent(progress.get('fraction'))} {progress.get('message', '')}".rstrip())
    if job.get("job_error"):
        lines.append(f"  error ({job.get('error_code')}): " + str(job["job_error"]).replace("\n", "\n    "))
        hint = hint_for(job.get("error_code"))
        if hint:
            lines.append(f"  hint: {hint}")
    if job.get("result") not in (None, {}, []):
        lines.append(f"  result: {result_text(job.get('type'), job['result'])}")
    return "\n".join(lines)


# (result key, how to say it) for the opkg job types' results, in the order told.
_RESULT_WORDS = {
    "install": (("installed", "installed"), ("dependencies", "with dependencies"),
                ("already_present", "already installed"), ("rolled_back", "rolled back"),
                ("updated_lists", "package lists updated first")),
    "uninstall": (("removed", "removed"), ("autoremoved", "with orphaned dependencies"),
                  ("not_installed", "not installed")),
}


def result_text(job_type: str | None, result: Any) -> str:
    """An opkg job's result in words ("installed tcpdump; with dependencies
    libpcap1"); anything else as compact JSON."""
    words = _RESULT_WORDS.get(job_type or "")
    if words is None or not isinstance(result, dict) or not set(result) <= {key for key, _ in words} | {
            "failed", "dependents"}:
        return json.dumps(result, ensure_ascii=False)
    parts = []
    for key, label in words:
        value = result.get(key)
        if value is True:
            parts.append(label)
        elif value:
            parts.append(f"{label} {' '.join(value)}")
    if result.get("failed"):
        parts.append("failed " + " ".join(f"{name} ({code})" for name, code in result["failed"].items()))
    return "; ".join(parts) or "nothing to do"


def progress_cell(job: dict[str, Any], with_bar: bool, width: int = 10) -> str:
    """The PROGRESS cell of a listing: a short bar on a terminal, a percentage
    always; "-" for a job that ended without succeeding or never reported."""
    fraction = (job.get("progress") or {}).get("fraction")
    if fraction is None or job.get("state") in ("failed", "cancelled", "interrupted"):
        return "-"
    text = f"{fraction * 100:.0f}%"
    return f"{bar(fraction, width)} {text:>4}" if with_bar else text


def note_of(job: dict[str, Any]) -> str:
    """One short phrase: the step of an active job, the error code of a failed one."""
    if job.get("error_code"):
        return str(job["error_code"])
    if job.get("state") in ("queued", "held", "running"):
        return str((job.get("progress") or {}).get("message") or "")
    return ""


def age(epoch: float | None, now: float | None = None) -> str:
    """"12s", "5m", "3h", "2d" since ``epoch``; "-" when unknown."""
    if not epoch:
        return "-"
    seconds = max(0.0, (time.time() if now is None else now) - float(epoch))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f}{unit}"
    return f"{seconds:.0f}s"


class ProgressView:
    """Shows a job's events: on a terminal a bar redrawn in place under the
    log lines (the bar comes back after every line), plain lines otherwise."""

    def __init__(self, out: IO[str] | None = None, show_log: bool = True) -> None:
        self.out = sys.stdout if out is None else out
        self.tty = _isatty(self.out) and os.environ.get("TERM") != "dumb"  # a dumb terminal cannot redraw
        self.show_log = show_log
        self._last_plain: tuple | None = None
        self._bar: str | None = None  # the bar line as last drawn
        self._bar_shown = False
        self._state: str | None = None  # progress events carry none: the last state event's
        self.draws = 0  # how many times the bar was drawn (for the curious, and tests)

    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "log" and self.show_log:
            # One log entry may hold several lines (an error with opkg's own lines).
            self._lines([f"  | {line}" for line in str(event.get("line", "")).split("\n")])
        elif kind in ("progress", "state"):
            data = event.get("data") or {}
            progress = data.get("progress", data) if kind == "state" else data
            self._state = data.get("state") or self._state
            self._progress(progress.get("fraction"), progress.get("message", ""), self._state)
        elif kind == "end":
            self._clear_bar()

    def close(self) -> bool:
        """End the bar's line (after Ctrl-C, say); True if there was one to end."""
        if not self._bar_shown:
            return False
        self.out.write("\n")
        self.out.flush()
        self._bar_shown = False
        return True

    def _progress(self, fraction: float | None, message: str, state: str | None) -> None:
        if self.tty:
            if state in ("failed", "cancelled", "interrupted"):
                self._clear_bar()  # the summary says how it ended
                self._bar = None
                return
            self._bar = f"{bar(fraction)} {percent(fraction)} {message}"[:200]
            self._draw_bar()
            return
        key = (state, message, None if fraction is None else round(fraction, 2))
        if key != self._last_plain:
            self._last_plain = key
            prefix = f"[{state}] " if state else ""
            ended = state in ("failed", "cancelled", "interrupted")  # the summary says how far it got
            self._lines([prefix.rstrip() if ended else f"{prefix}{percent(fraction)} {message}".rstrip()])

    def _draw_bar(self) -> None:
        self.out.write(f"\r\x1b[K{self._bar}")
        self.out.flush()
        self._bar_shown = True
        self.draws += 1

    def _lines(self, lines: list[str]) -> None:
        self._clear_bar()
        self.out.write("".join(line + "\n" for line in lines))
        if self.tty and self._bar is not None:
            self._draw_bar()
        else:
            self.out.flush()

    def _clear_bar(self) -> None:
        if self._bar_shown:
            self.out.write("\r\x1b[K")
            self._bar_shown = False
