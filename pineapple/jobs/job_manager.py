"""Hak5's import path ``pineapple.jobs.job_manager``: the same
:class:`~pineapple.jobs.manager.JobManager` (and, as there, the names of
:mod:`pineapple.logger`)."""
from __future__ import annotations

from ..logger import Logger, PrettyFormatter, get_logger, logging  # noqa: F401  (Hak5's star import)
from .manager import JobManager

__all__ = ["JobManager", "Logger", "PrettyFormatter", "get_logger", "logging"]
