"""opkg's message channels: notices on stdout, errors collected for stderr.

Mirrors libopkg/opkg_message.[ch]: ``opkg_msg(NOTICE, ...)`` prints the text
as is on stdout (C stdio buffering, which Python's sys.stdout matches:
block-buffered on a pipe, line-buffered on a tty); INFO and DEBUG lines are
printed only at higher verbosity and prefixed with ``FUNCTION: ``; ERROR
messages are prefixed with ``FUNCTION: `` and kept in a list that is printed
to stderr at exit as::

    Collected errors:
     * FUNCTION: message
"""
from __future__ import annotations

import os
import sys

ERROR, NOTICE, INFO, DEBUG, DEBUG2 = range(5)


class Messages:
    """The message sink of one opkg run."""

    def __init__(self, verbosity: int = NOTICE) -> None:
        self.verbosity = verbosity
        self.errors: list[str] = []

    def notice(self, text: str) -> None:
        """A NOTICE line: printed unprefixed on stdout (``text`` has its own newline)."""
        if self.verbosity >= NOTICE:
            sys.stdout.write(text)

    def info(self, func: str, text: str) -> None:
        """An INFO line (verbosity >= 2, ``-V2``), prefixed with the C function name."""
        if self.verbosity >= INFO:
            sys.stdout.write(f"{func}: {text}")

    def debug(self, func: str, text: str) -> None:
        """A DEBUG line (verbosity >= 3)."""
        if self.verbosity >= DEBUG:
            sys.stdout.write(f"{func}: {text}")

    def error(self, func: str, text: str) -> None:
        """An ERROR: collected, printed to stderr at exit as `` * func: text``."""
        self.errors.append(f"{func}: {text}")

    def raw_error(self, text: str) -> None:
        """An ERROR printed through opkg_message() (no function prefix)."""
        self.errors.append(text)

    def perror(self, func: str, text: str, errno: int) -> None:
        """opkg_perror(): ``text: strerror(errno).``"""
        self.error(func, f"{text}: {os.strerror(errno)}.\n")

    def flush_errors(self) -> None:
        """Print the ``Collected errors:`` block, if any, on stderr."""
        if not self.errors:
            return
        block = "Collected errors:\n" + "".join(f" * {message}" for message in self.errors)
        sys.stderr.write(block)
        sys.stderr.flush()
