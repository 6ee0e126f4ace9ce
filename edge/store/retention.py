"""Retention: which logged frames go when space runs short or frames grow old.

Frames are deleted whole (files, then rows), oldest first within each class, classes in
this order: clean bags (screened, no alarm, no dispute), bags never screened, alarm bags,
and last the bags an operator disputed (decision disagrees with the alarm). A bag takes
the most precious class of its frames, so a clean side view of an alarm bag stays with
it. Pinned frames are never deleted.

Raw scanner frames kept for calibration (DATA/calibration/raw, see raw_frames.py) count
towards the quota with the image files. Those no calibration profile names as a source
(and not of a pinned frame) go by age with the frames, and under space pressure before any
logged frame, oldest first: they are calibration material, a logged frame is the screening
record. Those a profile names are never deleted here (the profile's audit trail).
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sqlite_utils import Database

from edge.errors import BadInputError
from edge.store.raw_frames import RawFrames
from edge.store.records import event_row, iso, utc_now

if TYPE_CHECKING:
    from edge.store.store import Store

BATCH = 256


class RetentionClass(enum.IntEnum):
    """Deletion order: lower goes first."""

    CLEAN = 0
    NOT_SCREENED = 1
    ALARM = 2
    DISPUTED = 3


# The class of one frame from its latest result and decision (columns of `frames`).
_FRAME_CLASS = f"""
    CASE
      WHEN (alarm = 1 AND decision = 'clear')
        OR (alarm = 0 AND decision IN ('search', 'threat')) THEN {RetentionClass.DISPUTED:d}
      WHEN alarm = 1 THEN {RetentionClass.ALARM:d}
      WHEN alarm = 0 THEN {RetentionClass.CLEAN:d}
      ELSE {RetentionClass.NOT_SCREENED:d}
    END"""

_CANDIDATES = f"""
WITH f AS (
  SELECT id, bag, received, bytes, pinned, {_FRAME_CLASS} AS cls
  FROM frames WHERE retiring = 0
), b AS (
  SELECT bag, MAX(cls) AS cls FROM f WHERE bag IS NOT NULL GROUP BY bag
)
SELECT f.id, f.bytes, MAX(f.cls, COALESCE(b.cls, f.cls)) AS cls
FROM f LEFT JOIN b ON b.bag = f.bag
WHERE f.pinned = 0 AND (:before IS NULL OR f.received < :before)
ORDER BY cls, f.received, f.id
"""


@dataclass(frozen=True)
class RetentionPolicy:
    """Keep `min_free_bytes` free on the data disk, delete frames older than `max_age_days`,
    and keep the images directory under `quota_bytes` when set (bytes of image files)."""

    min_free_bytes: int = 0
    max_age_days: float | None = None
    quota_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.min_free_bytes < 0:
            raise BadInputError(f"min_free_bytes: expected >= 0, got {self.min_free_bytes}")
        if self.max_age_days is not None and self.max_age_days < 0:
            raise BadInputError(f"max_age_days: expected >= 0, got {self.max_age_days}")
        if self.quota_bytes is not None and self.quota_bytes < 0:
            raise BadInputError(f"quota_bytes: expected >= 0, got {self.quota_bytes}")

    def bytes_needed(self, free_bytes: int, images_bytes: int, incoming: int = 0) -> int:
        """Bytes to delete so that `incoming` more bytes still meet the reserve and quota."""
        need = self.min_free_bytes + incoming - free_bytes if self.min_free_bytes else 0
        if self.quota_bytes is not None:
            need = max(need, images_bytes + incoming - self.quota_bytes)
        return max(need, 0)


@dataclass
class RetentionReport:
    deleted_frames: int = 0
    freed_bytes: int = 0
    by_class: dict[str, int] = field(default_factory=dict)  # class name -> frames deleted
    bytes_still_needed: int = 0  # > 0: even deleting every unpinned frame was not enough
    free_bytes: int = 0
    images_bytes: int = 0
    raw_deleted: int = 0  # raw frames kept for calibration (DATA/calibration/raw) deleted
    raw_freed_bytes: int = 0
    raw_bytes: int = 0  # what the raw frames left use


class RetentionTarget(Protocol):
    """The store as retention sees it, inside its writer thread."""

    @property
    def data_dir(self) -> Path: ...

    @property
    def images_bytes(self) -> int: ...

    def free_bytes(self) -> int: ...

    def delete_frames(self, db: Database, frame_ids: list[str]) -> int: ...


def enforce(
    target: RetentionTarget,
    db: Database,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    incoming: int = 0,
) -> RetentionReport:
    """Delete by age, then by space until `incoming` bytes fit. Runs in the writer thread."""
    report = RetentionReport()
    deleted: Counter[RetentionClass] = Counter()
    pinned = {row[0] for row in db.execute("SELECT id FROM frames WHERE pinned = 1").fetchall()}
    raw = RawFrames(target.data_dir, pinned)
    if policy.max_age_days is not None:
        cutoff_at = (now or utc_now()) - timedelta(days=policy.max_age_days)
        cutoff = iso(cutoff_at)
        while batch := _candidates(db, before=cutoff):
            report.freed_bytes += target.delete_frames(db, [frame_id for frame_id, _, _ in batch])
            deleted.update(cls for _, _, cls in batch)
        raw.delete_older_than(cutoff_at.timestamp())

    def needed() -> int:
        return policy.bytes_needed(
            target.free_bytes(), target.images_bytes + raw.total_bytes, incoming
        )

    need = needed()
    if need > 0 and raw.delete_for(need):
        need = needed()
    while need > 0 and (batch := _candidates(db, before=None)):
        chosen, total = [], 0
        for frame_id, size, cls in batch:
            chosen.append(frame_id)
            deleted[cls] += 1
            total += size
            if total >= need:
                break
        report.freed_bytes += target.delete_frames(db, chosen)
        need = needed()
    report.deleted_frames = sum(deleted.values())
    report.by_class = {cls.name.lower(): deleted[cls] for cls in RetentionClass if deleted[cls]}
    report.bytes_still_needed = need
    report.free_bytes = target.free_bytes()
    report.images_bytes = target.images_bytes
    report.raw_deleted, report.raw_freed_bytes = raw.deleted, raw.freed_bytes
    report.raw_bytes = raw.total_bytes
    if report.deleted_frames or raw.deleted:
        raw_note = (
            f", and {raw.deleted} raw calibration frames ({raw.freed_bytes} bytes)"
            if raw.deleted
            else ""
        )
        db.table("events").insert(
            event_row(
                "retention",
                f"retention deleted {report.deleted_frames} frames ({report.freed_bytes} bytes)"
                + raw_note,
                {
                    "by_class": report.by_class,
                    "bytes_still_needed": need,
                    "raw_deleted": raw.deleted,
                    "raw_freed_bytes": raw.freed_bytes,
                },
            )
        )
    return report


def apply_retention(
    store: Store, policy: RetentionPolicy | None = None, *, now: datetime | None = None
) -> RetentionReport:
    """Apply `policy` (default: the store's own) now, in the writer thread; blocks until done."""
    chosen = policy or store.retention
    if chosen is None:
        raise BadInputError("apply_retention: no policy given and the store has none")
    return store.submit_write(lambda db: enforce(store, db, chosen, now=now)).result()


def _candidates(db: Database, before: str | None) -> list[tuple[str, int, RetentionClass]]:
    """The next BATCH frames to delete, in deletion order; `before`: received earlier."""
    rows = db.execute(f"{_CANDIDATES} LIMIT {BATCH}", {"before": before}).fetchall()
    return [(frame_id, size, RetentionClass(cls)) for frame_id, size, cls in rows]
