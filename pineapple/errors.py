"""Stable, machine-readable error codes shared by the engine, the opkg layer,
the socket API, MQTT and the CLI.

A code never changes meaning once released; the human message beside it may.
Every code is listed in docs/protocol.md.
"""
from __future__ import annotations

# Job outcomes
TIMEOUT = "timeout"
CANCELLED = "cancelled"
INTERRUPTED = "interrupted"
JOB_FAILED = "job_failed"  # do_work raised or set an error without a code

# opkg
UNKNOWN_PACKAGE = "unknown_package"
MISSING_DEPENDENCY = "missing_dependency"
DOWNLOAD_FAILED = "download_failed"
CHECKSUM_MISMATCH = "checksum_mismatch"
INSUFFICIENT_SPACE = "insufficient_space"
SCRIPT_FAILED = "script_failed"
HAS_DEPENDENTS = "has_dependents"
LOCK_BUSY = "lock_busy"
OPKG_NOT_FOUND = "opkg_not_found"
OPKG_FAILED = "opkg_failed"
INVALID_PACKAGE_NAME = "invalid_package_name"
VERIFY_FAILED = "verify_failed"

# Engine / API
UNKNOWN_JOB = "unknown_job"
UNKNOWN_JOB_TYPE = "unknown_job_type"
MISSING_FIELD = "missing_field"
INVALID_FIELD = "invalid_field"
JOB_ACTIVE = "job_active"
QUEUE_FULL = "queue_full"
SHUTTING_DOWN = "shutting_down"
UNKNOWN_HOOK = "unknown_hook"
JOURNAL_UNAVAILABLE = "journal_unavailable"  # the job's record cannot be saved (state directory full)
INTERNAL_ERROR = "internal_error"  # a bug; logged, and the daemon carries on

# Schedules (docs/schedules.md)
SCHEDULE_EXISTS = "schedule_exists"
UNKNOWN_SCHEDULE = "unknown_schedule"
INVALID_TRIGGER = "invalid_trigger"
SCHEDULE_BUSY = "schedule_busy"
SCHEDULE_READ_ONLY = "schedule_read_only"


class JobError(Exception):
    """An error with a stable code. Raise it from ``do_work`` to set both the
    job's human ``error`` (the message) and its ``error_code``."""

    def __init__(self, message: str, code: str = JOB_FAILED, result: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.result = result

    @property
    def message(self) -> str:
        return str(self)
