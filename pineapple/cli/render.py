"""How the CLI shows things: tables, job summaries, a live progress bar."""
from __future__ import annotations

import json
import sys
from typing import IO, Any

BAR_WIDTH = 30


def dump_json(value: Any, out: IO[str] = sys.stdout) -> None:
    out.write(json.dumps(value, indent=None, separators=(",", ":"), ensure_ascii=False) + "\n")


def describe_job(job: dict) -> str:
    """A few human lines about a job summary or record."""
    lines = [f"job {job.get('job_id')}  {job.get('type', '')}  {job.get('state')}"]
    progress = job.get("progress") or {}
    if progress.get("fraction") is not None or progress.get("message"):
        lines.append(f"  progress: {_percent(progress.get('fraction'))} {progress.get('message', '')}".rstrip())
    if job.get("job_error"):
        lines.append(f"  error ({job.get('error_code')}): " + str(job["job_error"]).replace("\n", "\n    "))
    if job.get("result") not in (None, {}, []):
        lines.append(f"  result: {json.dumps(job['result'], ensure_ascii=False)}")
    return "\n".join(lines)


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    def fmt(row: list[str]) -> str:
        return "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
    return "\n".join([fmt(headers), *(fmt(r) for r in rows)])


def _percent(fraction: float | None) -> str:
    return "  ?%" if fraction is None else f"{fraction * 100:3.0f}%"


class ProgressView:
    """Shows a job's events: a redrawn bar on a terminal, plain lines otherwise."""

    def __init__(self, out: IO[str] = sys.stdout, show_log: bool = True) -> None:
        self.out = out
        self.tty = out.isatty()
        self.show_log = show_log
        self._last_plain: tuple | None = None
        self._bar_shown = False

    def event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "log" and self.show_log:
            self._line(f"  | {event.get('line', '')}")
        elif kind in ("progress", "state"):
            data = event.get("data") or {}
            progress = data.get("progress", data) if kind == "state" else data
            self._progress(progress.get("fraction"), progress.get("message", ""), data.get("state"))
        elif kind == "end":
            self._clear_bar()

    def _progress(self, fraction: float | None, message: str, state: str | None) -> None:
        if self.tty:
            filled = int(BAR_WIDTH * (fraction or 0.0))
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            self.out.write(f"\r\x1b[K[{bar}] {_percent(fraction)} {message}"[:200])
            self.out.flush()
            self._bar_shown = True
            return
        key = (state, message, None if fraction is None else round(fraction, 2))
        if key != self._last_plain:
            self._last_plain = key
            prefix = f"[{state}] " if state else ""
            self._line(f"{prefix}{_percent(fraction)} {message}".rstrip())

    def _line(self, text: str) -> None:
        self._clear_bar()
        self.out.write(text + "\n")
        self.out.flush()

    def _clear_bar(self) -> None:
        if self._bar_shown:
            self.out.write("\r\x1b[K")
            self._bar_shown = False
