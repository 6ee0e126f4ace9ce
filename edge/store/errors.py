"""Errors of the image log; each message says what a technician can check or do."""

from __future__ import annotations

from edge.errors import EdgeError


class StoreError(EdgeError):
    """The image log cannot do what was asked (base of the store's errors)."""

    http_status = 503
    exit_status = 1


class StoreBusyError(StoreError):
    """Another process holds the data directory (a running service): opening it here could
    let start-up reconciliation delete frames that process is still writing."""

    exit_status = 2


class StoreCorruptError(StoreError):
    """`PRAGMA quick_check` failed or edge.db is not a database: the store refuses to open."""


class ReconcileAbortedError(StoreError):
    """Start-up clean-up would delete more than half of the image files: nothing was deleted."""


class LoggingDegradedError(StoreError):
    """A write failed for lack of space or an I/O error; nothing of it was kept.

    The service catches this and screens the frame from memory: screening goes on while
    `Store.health()` says logging is degraded. The next write tries again.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class FrameNotFoundError(StoreError):
    """No frame with this id in the log (never stored, or deleted by retention)."""

    http_status = 404
    exit_status = 2


class ImageMissingError(StoreError):
    """The frame's row exists but its image files are missing or do not match their hash."""

    http_status = 410


class StoreClosedError(StoreError):
    """The store was closed; no more reads or writes."""
