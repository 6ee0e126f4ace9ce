"""Logging health: a write that fails for lack of space or an I/O error degrades logging
instead of stopping the appliance; the next write of the same kind that succeeds clears it.

Disk-full and I/O errors are told apart from bugs: an OSError, or an SQLite error whose
primary code says the disk or file cannot take writes (SQLITE_FULL, SQLITE_IOERR, ...).
Anything else (a constraint, a typo in SQL) propagates unchanged.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlite_utils import Database

from edge.store.errors import LoggingDegradedError
from edge.store.records import event_row, iso, utc_now

logger = logging.getLogger(__name__)

T = TypeVar("T")

_ENVIRONMENT_CODES = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
    }
)


def is_environmental(exc: BaseException) -> bool:
    """True for errors of the disk or file system rather than of the code."""
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, sqlite3.DatabaseError):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and (code & 0xFF) in _ENVIRONMENT_CODES
    return False


def describe(exc: BaseException) -> str:
    """ "ENOSPC: No space left on device", "SQLITE_FULL: database or disk is full", ..."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror or exc}"
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    return f"{name}: {exc}"


class LoggingHealth:
    """Degraded or ok, with the reason; updated on the writer thread, read from any.

    Kept per kind of write (frame, result, decision, ...): a result that commits while
    frames still do not fit says nothing about the frames, so only a frame write that
    succeeds clears a frame failure. Logging is ok when no kind is failing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failing: dict[str, dict[str, Any]] = {}  # kind -> since, reason, failed_writes
        self._reason: str | None = None
        self._last_write: str | None = None

    def guarded(self, job: Callable[[Database], T], kind: str) -> Callable[[Database], T]:
        """`job` wrapped: a disk error degrades logging and raises LoggingDegradedError;
        success clears an earlier failure of the same kind of write."""

        def run(db: Database) -> T:
            try:
                value = job(db)
            except (OSError, sqlite3.DatabaseError) as exc:
                if not is_environmental(exc):
                    raise
                reason = describe(exc)
                self._degrade(db, kind, reason)
                raise LoggingDegradedError(
                    f"image log: {kind} not logged, logging degraded ({reason}); screening goes on",
                    reason,
                ) from exc
            self._recover(db, kind)
            return value

        return run

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            failing = {kind: dict(state) for kind, state in self._failing.items()}
            reason, last_write = self._reason, self._last_write
        return {
            "logging": "degraded" if failing else "ok",
            "reason": reason if failing else None,
            "degraded_since": min((s["since"] for s in failing.values()), default=None),
            "failed_writes": sum(s["failed_writes"] for s in failing.values()),
            "failing": sorted(failing),
            "last_write": last_write,
        }

    def _degrade(self, db: Database, kind: str, reason: str) -> None:
        with self._lock:
            first = not self._failing
            state = self._failing.setdefault(kind, {"since": iso(utc_now()), "failed_writes": 0})
            state["failed_writes"] += 1
            state["reason"] = self._reason = reason
        if first:
            logger.error("image log degraded: %s (screening goes on)", reason)
            _try_event(db, "logging-degraded", f"logging degraded: {reason}", {"kind": kind})

    def _recover(self, db: Database, kind: str) -> None:
        with self._lock:
            was = self._failing.pop(kind, None)
            now_ok = was is not None and not self._failing
            if kind == "frame":
                self._last_write = iso(utc_now())
        if now_ok and was is not None:
            logger.warning("image log recovered after %d failed writes", was["failed_writes"])
            # Carries the outage's details: its own event may not have fit on a full disk.
            _try_event(db, "logging-recovered", "logging recovered", {"kind": kind, **was})


def _try_event(db: Database, kind: str, message: str, details: dict[str, Any]) -> None:
    try:
        db.table("events").insert(event_row(kind, message, details))
    except (OSError, sqlite3.DatabaseError):
        logger.warning("could not record the %s event", kind)
