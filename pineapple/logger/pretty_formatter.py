"""``PrettyFormatter``: log lines coloured by level, for a terminal."""
from __future__ import annotations

import logging

_RESET = "\x1b[0m"
_COLOURS = {
    logging.DEBUG: "\x1b[2m",       # dim
    logging.INFO: "\x1b[34m",       # blue
    logging.WARNING: "\x1b[33m",    # yellow
    logging.ERROR: "\x1b[31m",      # red
    logging.CRITICAL: "\x1b[1;31m",  # bold red
}
LINE_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s (%(filename)s:%(lineno)d)"


class PrettyFormatter(logging.Formatter):
    """Formats like :data:`LINE_FORMAT` and wraps the line in the ANSI colour
    of its level (levels in between take the colour of the level below)."""

    def __init__(self, fmt: str = LINE_FORMAT, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        colour = _COLOURS.get(record.levelno)
        if colour is None:
            below = [level for level in _COLOURS if level <= record.levelno]
            colour = _COLOURS[max(below)] if below else ""
        return f"{colour}{super().format(record)}{_RESET if colour else ''}"
