"""The image log: one data directory with `edge.db` and `images/`, written by one thread.

Start-up, in order: `PRAGMA quick_check`, migrations, reconciliation of rows and files.
`add_frame` returns only once the image files (fsync'd, renamed, directory fsync'd) and
then the row (committed, WAL fsync'd) are durable: what the serial link needs before it
ACKs `stored`. A write that fails for lack of space or an I/O error raises
LoggingDegradedError and marks logging degraded in `health()`; screening goes on, the next
write tries again, and the first that succeeds clears the state.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar, Unpack

from sqlite_utils import Database

from edge.errors import BadInputError
from edge.frames import Frame, Result
from edge.store import queries, test_runs
from edge.store.errors import FrameNotFoundError, StoreBusyError, StoreCorruptError
from edge.store.frame_log import FrameLog
from edge.store.health import LoggingHealth
from edge.store.images import (
    DEFAULT_PNG_LEVEL,
    IMAGES_DIRNAME,
    decode_files,
    encode_frame,
    ensure_dir,
    fsync_dir,
    png_params,
)
from edge.store.queries import FrameFilters
from edge.store.reconcile import quick_check, reconcile
from edge.store.records import (
    ReconcileReport,
    StoredDecision,
    StoredFrame,
    StoredResult,
    event_row,
    iso,
    to_utc,
    utc_now,
)
from edge.store.retention import RetentionPolicy
from edge.store.rows import FrameFields, result_row
from edge.store.schema import DECISIONS, apply_migrations
from edge.store.test_runs import StoredTestRun
from edge.store.writer import ReadPool, WriterThread

logger = logging.getLogger(__name__)

T = TypeVar("T")
DB_FILENAME = "edge.db"


LOCK_FILENAME = ".edge.lock"


def _lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold the data directory exclusively for this process (released on close or death)."""
    handle = (data_dir / LOCK_FILENAME).open("a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StoreBusyError(
            f"{data_dir} is in use by {holder}; stop the service first, or use its HTTP API"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"edge process {os.getpid()}\n")
    handle.flush()
    return handle


class Store:
    """The image log in `data_dir`. Thread-safe; close() it (or use `with`).

    `retention`: applied automatically before a write that would break its reserve or
    quota, and by age about hourly; `capacity_bytes`: the most the image files may take,
    as if the disk were that small (a write past it fails with ENOSPC); `db_max_bytes`:
    cap on edge.db (SQLite then reports SQLITE_FULL); `force_reconcile`: delete orphan
    files even when they are more than half of all image files; `png_level`: zlib level
    0-9 of the image files (0, the default, is fastest; see images.DEFAULT_PNG_LEVEL).
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        retention: RetentionPolicy | None = None,
        capacity_bytes: int | None = None,
        db_max_bytes: int | None = None,
        force_reconcile: bool = False,
        png_level: int = DEFAULT_PNG_LEVEL,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / DB_FILENAME
        self.images_dir = self.data_dir / IMAGES_DIRNAME
        self.reconcile_report: ReconcileReport | None = None
        self._log = FrameLog(self.data_dir, retention, capacity_bytes)
        self._health = LoggingHealth()
        self._db_max_bytes = db_max_bytes
        self._force_reconcile = force_reconcile
        png_params(png_level)  # refuse a bad level now, not at the first frame
        self.png_level = png_level
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock_data_dir(self.data_dir)
        try:
            self._writer = WriterThread(self.db_path, setup=self._start_up)
        except sqlite3.DatabaseError as exc:
            self._lock_file.close()
            raise StoreCorruptError(
                f"{self.db_path}: cannot open the image log database ({exc}); move it aside "
                "to start a new log, or restore it from a backup"
            ) from exc
        except BaseException:
            self._lock_file.close()  # a refused start-up must not keep the directory
            raise
        self._readers = ReadPool(self.db_path)

    def _start_up(self, db: Database) -> None:
        quick_check(db, self.db_path)
        if self._db_max_bytes is not None:
            page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
            db.execute(f"PRAGMA max_page_count = {max(1, self._db_max_bytes // page_size)}")
        apply_migrations(db)
        ensure_dir(self.images_dir, self._log.known_dirs)
        fsync_dir(self.data_dir)  # edge.db and its WAL may be new names
        report, self._log.images_bytes = reconcile(db, self.data_dir, force=self._force_reconcile)
        self.reconcile_report = report
        if report.orphans_removed or report.temp_files_removed or report.missing_flagged:
            logger.warning(
                "image log reconciled: %d orphan files and %d temp files removed, "
                "%d frames flagged missing_image",
                len(report.orphans_removed),
                len(report.temp_files_removed),
                len(report.missing_flagged),
            )

    # -- writes: each runs on the writer thread ------------------------------------------

    def add_frame(self, frame: Frame, **fields: Unpack[FrameFields]) -> StoredFrame:
        """Log a frame; returns once its files and row are durable (safe to ACK `stored`).

        Raises LoggingDegradedError when the disk cannot take it: screen it anyway.
        """
        return self.add_frame_async(frame, **fields).result()

    def add_frame_async(self, frame: Frame, **fields: Unpack[FrameFields]) -> Future[StoredFrame]:
        """add_frame without waiting: the Future resolves once the frame is durable."""
        encoded = encode_frame(frame, self.png_level)  # CPU work in the caller's thread
        given: dict[str, Any] = dict(fields)
        metadata = {**frame.meta, **(given.pop("metadata", None) or {})}
        received = to_utc(given.pop("received", None) or utc_now())
        return self._write(
            lambda db: self._log.write_frame(db, encoded, received, metadata, given),
            kind="frame",
        )

    def add_result(
        self,
        frame_id: str,
        result: Result,
        model_sha256: str | None = None,
        class_names: list[str] | None = None,
    ) -> StoredResult:
        """Log a screening result (model name, version, hash) and make it the frame's latest."""
        row = result_row(frame_id, result, model_sha256, class_names)

        def write(db: Database) -> StoredResult:
            with db.atomic():
                self._update_frame(db, frame_id, {"state": row["state"], "alarm": row["alarm"]})
                db.table("results").insert(row)
            return StoredResult.from_row(row)

        return self._write(write, kind="result").result()

    def add_decision(
        self,
        frame_id: str,
        decision: str,
        user: str | None = None,
        note: str | None = None,
        at: datetime | None = None,
    ) -> StoredDecision:
        """Log an operator's decision (clear / search / threat); the latest one counts."""
        if decision not in DECISIONS:
            raise BadInputError(
                f"decision: expected one of {', '.join(DECISIONS)}, got {decision!r}"
            )
        stored = StoredDecision(frame_id, decision, user, iso(at or utc_now()), note)

        def write(db: Database) -> StoredDecision:
            with db.atomic():
                self._update_frame(db, frame_id, {"decision": decision})
                db.table("decisions").insert(dataclasses.asdict(stored))
            return stored

        return self._write(write, kind="decision").result()

    def set_pinned(self, frame_id: str, pinned: bool = True) -> None:
        """A pinned frame is never deleted by retention."""
        self._write(
            lambda db: self._update_frame(db, frame_id, {"pinned": int(pinned)}), kind="pin"
        ).result()

    def add_event(
        self,
        kind: str,
        message: str,
        details: dict[str, Any] | None = None,
        frame_id: str | None = None,
    ) -> None:
        """Record an event (logging-degraded, detector-restarted, ...) in the log."""
        row = event_row(kind, message, details, frame_id)
        self._write(lambda db: db.table("events").insert(row), kind="event").result()

    def submit_write(self, job: Callable[[Database], T]) -> Future[T]:
        """Run `job(db)` on the writer thread (for the store's own modules: retention,
        export records). A disk error degrades logging like any other write."""
        return self._write(job, kind="maintenance")

    def delete_frames(self, db: Database, frame_ids: list[str]) -> int:
        """Writer thread only (a submit_write job): delete frames whole; returns bytes freed."""
        return self._log.delete_frames(db, frame_ids)

    # -- reads: query-only connections, never waiting for the writer ---------------------

    def get_frame(self, frame_id: str) -> StoredFrame:
        """The frame with its latest result and its decisions; FrameNotFoundError if none."""
        with self._readers.connection() as conn:
            return queries.get_frame(conn, frame_id)

    def list_frames(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        newest_first: bool = True,
        with_results: bool = False,
        **filters: Unpack[FrameFilters],
    ) -> list[StoredFrame]:
        """Frames matching the filters (queries.frame_filter: received in [since, until),
        alarm, not_screened, disputed, bag, decision, class_name, source, lane), paged;
        `with_results`: each with its latest result (decisions are not filled)."""
        where = queries.frame_filter(**filters)
        with self._readers.connection() as conn:
            if not with_results:
                return queries.list_frames(conn, where, limit, offset, newest_first)
            conn.execute("BEGIN")  # frames and their results from one snapshot
            try:
                frames = queries.list_frames(conn, where, limit, offset, newest_first)
                results = queries.latest_results(conn, [f.id for f in frames])
            finally:
                conn.rollback()
        return [dataclasses.replace(f, result=results.get(f.id)) for f in frames]

    def count_frames(self, **filters: Unpack[FrameFilters]) -> int:
        """How many frames list_frames would return with these filters, unpaged."""
        with self._readers.connection() as conn:
            return queries.count_frames(conn, queries.frame_filter(**filters))

    def latest_decisions(self, frame_ids: list[str]) -> dict[str, str | None]:
        """The latest operator decision of each of these frames that is in the log."""
        with self._readers.connection() as conn:
            return queries.latest_decisions(conn, frame_ids)

    def list_results(self, frame_id: str) -> list[StoredResult]:
        with self._readers.connection() as conn:
            return queries.list_results(conn, frame_id)

    def list_test_runs(self, limit: int = 50, offset: int = 0) -> tuple[list[StoredTestRun], int]:
        """Regression and acceptance runs, newest first (without reports), and their count."""
        with self._readers.connection() as conn:
            return test_runs.list_test_runs(conn, limit, offset)

    def get_test_run(self, run_id: str) -> StoredTestRun:
        """One run with its report; NoSuchTestRunError (404) when there is none."""
        with self._readers.connection() as conn:
            return test_runs.get_test_run(conn, run_id)

    def list_events(self, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        with self._readers.connection() as conn:
            return queries.list_events(conn, kind, limit)

    def load_image(self, frame_id: str) -> Frame:
        """The logged pixels as a Frame, checked against the stored SHA-256; meta carries
        the frame's id and fields. ImageMissingError when the files are gone or damaged."""
        stored = self.get_frame(frame_id)
        frame = decode_files(
            self.data_dir, frame_id, stored.channels, stored.image_paths, stored.sha256
        )
        frame.meta = stored.frame_meta()
        return frame

    @property
    def retention(self) -> RetentionPolicy | None:
        """The policy applied before writes (and by apply_retention without one)."""
        return self._log.retention

    @property
    def images_bytes(self) -> int:
        """Bytes of the image files the log holds."""
        return self._log.images_bytes

    @property
    def capacity_bytes(self) -> int | None:
        return self._log.capacity_bytes

    def free_bytes(self) -> int:
        """Free bytes on the data disk, or under capacity_bytes when that is smaller."""
        return self._log.free_bytes()

    def health(self) -> dict[str, Any]:
        """{"logging": "ok" | "degraded", "reason", "degraded_since", "failed_writes",
        "failing" (kinds of write failing: frame, result, ...), "last_write" (of a frame),
        "free_bytes", "images_bytes", "capacity_bytes", "missing_images"}."""
        with self._readers.connection() as conn:
            missing = queries.missing_count(conn)
        return {
            **self._health.snapshot(),
            "free_bytes": self.free_bytes(),
            "images_bytes": self.images_bytes,
            "capacity_bytes": self.capacity_bytes,
            "missing_images": missing,
        }

    def close(self) -> None:
        """Finish queued writes and close every connection."""
        self._writer.close()
        self._readers.close()
        self._lock_file.close()  # releases the data directory

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _update_frame(self, db: Database, frame_id: str, values: dict[str, Any]) -> None:
        sets = ", ".join(f"{column} = ?" for column in values)
        cursor = db.execute(
            f"UPDATE frames SET {sets} WHERE id = ? AND retiring = 0", [*values.values(), frame_id]
        )
        if cursor.rowcount == 0:
            raise FrameNotFoundError(f"frame {frame_id!r} is not in the image log")

    def _write(self, job: Callable[[Database], T], *, kind: str) -> Future[T]:
        return self._writer.submit(self._health.guarded(job, kind))
