"""The image log: frames' lossless image files and an SQLite index of frames, results and
operator decisions, with start-up reconciliation and retention.

`Store` is the entry point; `apply_retention` with a `RetentionPolicy` frees space.
"""

from edge.store.errors import (
    FrameNotFoundError,
    ImageMissingError,
    LoggingDegradedError,
    ReconcileAbortedError,
    StoreBusyError,
    StoreClosedError,
    StoreCorruptError,
    StoreError,
)
from edge.store.records import ReconcileReport, StoredDecision, StoredFrame, StoredResult
from edge.store.retention import RetentionClass, RetentionPolicy, RetentionReport, apply_retention
from edge.store.rows import FrameFields
from edge.store.store import Store

__all__ = [
    "FrameFields",
    "FrameNotFoundError",
    "ImageMissingError",
    "LoggingDegradedError",
    "ReconcileAbortedError",
    "ReconcileReport",
    "RetentionClass",
    "RetentionPolicy",
    "RetentionReport",
    "Store",
    "StoreBusyError",
    "StoreClosedError",
    "StoreCorruptError",
    "StoreError",
    "StoredDecision",
    "StoredFrame",
    "StoredResult",
    "apply_retention",
]
