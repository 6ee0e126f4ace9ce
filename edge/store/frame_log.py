"""The writer thread's side of the frame log: durable frame writes and whole-frame deletes.

Order on write: image files (temp name, fsync, rename, directory fsync), then the row in
one committed transaction. Order on delete: rows marked `retiring`, files removed, rows
deleted; start-up finishes a delete a crash interrupted. Everything here runs on the
writer thread, so the byte count and id counter need no lock.
"""

from __future__ import annotations

import errno
import json
import logging
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from edge.store.errors import StoreError
from edge.store.images import (
    IMAGES_DIRNAME,
    EncodedFrame,
    ensure_dir,
    prune_empty_dirs,
    relative_paths,
    remove_files,
    write_durable,
)
from edge.store.raw_frames import raw_bytes
from edge.store.reconcile import delete_rows
from edge.store.records import StoredFrame
from edge.store.retention import RetentionPolicy, enforce
from edge.store.rows import FrameIds, frame_row

logger = logging.getLogger(__name__)

AGE_CHECK_INTERVAL_S = 3600.0
RAW_RECOUNT_S = 60.0  # raw calibration frames are re-measured this often for the quota


class FrameLog:
    """Image files and frame rows, as the writer thread changes them.

    `capacity_bytes` caps the image files as if the disk were that small: a write past it
    fails with the same OSError(ENOSPC) a full disk raises, down the same path.
    """

    def __init__(
        self,
        data_dir: Path,
        retention: RetentionPolicy | None = None,
        capacity_bytes: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.images_dir = data_dir / IMAGES_DIRNAME
        self.retention = retention
        self.capacity_bytes = capacity_bytes
        self.images_bytes = 0  # set by start-up reconciliation from the files on disk
        self.known_dirs: set[Path] = set()
        self._ids = FrameIds()
        self._next_age_check = 0.0
        self._raw_bytes, self._raw_counted = 0, float("-inf")

    def free_bytes(self) -> int:
        """Free bytes on the data disk, or under capacity_bytes when that is smaller."""
        free = shutil.disk_usage(self.data_dir).free
        if self.capacity_bytes is not None:
            free = min(free, self.capacity_bytes - self.images_bytes)
        return max(free, 0)

    def write_frame(
        self,
        db: Database,
        encoded: EncodedFrame,
        received: datetime,
        metadata: dict[str, Any],
        fields: dict[str, Any],
    ) -> StoredFrame:
        """Files durable, then the row committed; on any failure nothing of it is left."""
        self._keep_within_retention(db, encoded.nbytes)
        if self.capacity_bytes is not None and (
            self.images_bytes + encoded.nbytes > self.capacity_bytes
        ):
            raise OSError(
                errno.ENOSPC,
                f"No space left on device (images use {self.images_bytes} of "
                f"{self.capacity_bytes} bytes, the frame needs {encoded.nbytes})",
            )
        frame_id, day, number = self._ids.allocate(db, received)
        relative = relative_paths(frame_id, received, encoded.channels)
        row = frame_row(frame_id, received, encoded, relative, metadata, fields)
        paths = [self.data_dir / p for p in relative]
        for path in paths:
            if path.exists():  # never replace a logged image, whatever went wrong
                raise StoreError(f"{path}: exists already; frame id {frame_id} reused")
        ensure_dir(paths[0].parent, self.known_dirs)
        write_durable(list(zip(paths, encoded.files.values(), strict=True)))
        try:
            with db.atomic():
                db.table("frames").insert(row)
                db.execute(
                    "INSERT INTO id_counters (day, last) VALUES (?, ?) "
                    "ON CONFLICT (day) DO UPDATE SET last = max(last, excluded.last)",
                    [day, number],
                )
        except BaseException:
            try:
                remove_files(paths)
            except OSError:
                logger.exception("could not remove the files of frame %s, not logged", frame_id)
            raise
        self.images_bytes += encoded.nbytes
        return StoredFrame.from_row(row)

    def delete_frames(self, db: Database, frame_ids: list[str]) -> int:
        """Delete frames whole, files before rows; returns the image bytes freed."""
        if not frame_ids:
            return 0
        marks = ",".join("?" * len(frame_ids))
        rows = db.execute(
            f"SELECT image_paths, bytes FROM frames WHERE id IN ({marks})", frame_ids
        ).fetchall()
        db.execute(f"UPDATE frames SET retiring = 1 WHERE id IN ({marks})", frame_ids)
        paths = [self.data_dir / p for paths_json, _ in rows for p in json.loads(paths_json)]
        remove_files(paths)
        prune_empty_dirs([p.parent for p in paths], self.images_dir, self.known_dirs)
        delete_rows(db, frame_ids)
        freed = int(sum(size for _, size in rows))
        self.images_bytes -= freed
        return freed

    def _keep_within_retention(self, db: Database, incoming: int) -> None:
        policy = self.retention
        if policy is None:
            return
        now = time.monotonic()
        age_due = policy.max_age_days is not None and now >= self._next_age_check
        if now - self._raw_counted >= RAW_RECOUNT_S:  # they count towards the quota too
            self._raw_bytes, self._raw_counted = raw_bytes(self.data_dir), now
        used = self.images_bytes + self._raw_bytes
        if age_due or policy.bytes_needed(self.free_bytes(), used, incoming) > 0:
            if age_due:
                self._next_age_check = time.monotonic() + AGE_CHECK_INTERVAL_S
            report = enforce(self, db, policy, incoming=incoming)
            self._raw_bytes = report.raw_bytes  # what retention left, counted as it ran
