"""Module loggers, compatible with Hak5's ``pineapple.logger``.

    from pineapple.logger import get_logger
    logger = get_logger("mymodule", logging.INFO)   # -> /tmp/modules/mymodule.log

What is different from Hak5's: the log file really rotates (Hak5's kept no
backup, so it never rotated and grew without bound in RAM); it is opened on
the first line (building a logger touches no file, and creates the
directory when needed); calling :func:`get_logger` again replaces only the
handlers it added itself.
"""
from __future__ import annotations

import logging
import os
from logging import Logger
from logging.handlers import RotatingFileHandler

from .pretty_formatter import LINE_FORMAT, PrettyFormatter

__all__ = ["LOG_MAX_BYTES", "Logger", "PrettyFormatter", "get_logger", "logging", "module_log_handler",
           "module_log_path"]

LOG_MAX_BYTES = 256 * 1024
LOG_BACKUPS = 1
_DEFAULT_LOG_DIR = "/tmp/modules"
_LOG_DIR_ENV = "PINEAPPLE_MODULE_SOCKET_DIR"  # the module socket directory: logs sit beside the sockets
_OURS = "_pineapple_handler"


def module_log_path(name: str, log_dir: str | None = None) -> str:
    """``LOG_DIR/NAME.log``: ``log_dir``, else ``$PINEAPPLE_MODULE_SOCKET_DIR``,
    else ``/tmp/modules`` (the device's)."""
    return os.path.join(log_dir or os.environ.get(_LOG_DIR_ENV) or _DEFAULT_LOG_DIR, f"{name}.log")


class _LazyRotatingFileHandler(RotatingFileHandler):
    """Opens the file (creating its directory) on the first record."""

    def _open(self):  # type: ignore[no-untyped-def]
        os.makedirs(os.path.dirname(self.baseFilename) or ".", exist_ok=True)
        return super()._open()


def module_log_handler(path: str, max_bytes: int = LOG_MAX_BYTES, backups: int = LOG_BACKUPS,
                       fmt: str = "%(asctime)s %(levelname)s %(message)s") -> logging.Handler:
    """The handler of a module's log file: rotates at ``max_bytes`` keeping
    ``backups`` old file(s), so at most ``(backups + 1) * max_bytes`` of RAM
    on a device's tmpfs. :class:`~pineapple.modules.Module` uses it too."""
    handler = _LazyRotatingFileHandler(path, maxBytes=max_bytes, backupCount=max(1, backups),
                                       encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter(fmt))
    setattr(handler, _OURS, True)
    return handler


def get_logger(name: str, level: int | str = logging.DEBUG, log_to_file: bool = True,
               console_logger_level: int = logging.DEBUG) -> Logger:
    """``logging.getLogger(name)`` set to ``level``, writing to
    ``/tmp/modules/NAME.log`` (``log_to_file``) and, when ``level`` is at
    or below ``console_logger_level``, coloured to stderr. Handlers added by
    an earlier call are replaced; others (a caller's own) are kept."""
    logger = logging.getLogger(name)
    logger.setLevel(level.upper() if isinstance(level, str) else level)
    for old in [h for h in logger.handlers if getattr(h, _OURS, False)]:
        logger.removeHandler(old)
        old.close()
    if log_to_file:
        logger.addHandler(module_log_handler(module_log_path(name), fmt=LINE_FORMAT))
    if logger.level <= console_logger_level:
        console = logging.StreamHandler()
        console.setFormatter(PrettyFormatter())
        setattr(console, _OURS, True)
        logger.addHandler(console)
    return logger
