"""Start-up checks, run on the writer connection before any write: the database passes
`PRAGMA quick_check`, and rows and image files agree.

Reconciliation removes temp files left by a crash and image files no row names (orphans:
written, but the process died before the row committed), flags rows whose files are
missing, and finishes deletions retention had begun. If the orphans would be more than
half of the image files, it deletes nothing and raises: the images directory probably
belongs to another database, or the disk is mounted wrong.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

from sqlite_utils import Database

from edge.store.errors import ReconcileAbortedError, StoreCorruptError
from edge.store.images import IMAGES_DIRNAME, prune_empty_dirs, remove_files, scan_images
from edge.store.records import ReconcileReport, event_row

logger = logging.getLogger(__name__)

# One writer writes one frame at a time, so a crash orphans at most one frame's files
# (two for dual energy); below this many orphans the half rule does not apply, else a
# crash during the very first frame would read as a wrong mount.
ORPHAN_ALLOWANCE = 4
MAX_ORPHAN_FRACTION = 0.5


def quick_check(db: Database, db_path: Path) -> None:
    """Raise StoreCorruptError unless `PRAGMA quick_check` says ok."""
    try:
        rows = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        raise StoreCorruptError(
            f"{db_path}: not a usable SQLite database ({exc}); move it aside to start a new "
            "log, or restore it from a backup"
        ) from exc
    if rows != ["ok"]:
        lines = "\n".join(str(row) for row in rows).splitlines()
        shown = "; ".join(lines[:3]) + (f"; and {len(lines) - 3} more" if len(lines) > 3 else "")
        raise StoreCorruptError(
            f"{db_path}: PRAGMA quick_check failed ({shown}); the image log will not start. "
            "Copy the data directory for analysis, then restore edge.db from a backup"
        )


def reconcile(db: Database, data_dir: Path, *, force: bool = False) -> tuple[ReconcileReport, int]:
    """Make rows and files agree; returns the report and the bytes of the images kept.

    `force` deletes orphans even when they are more than half of the files.
    """
    scan = scan_images(data_dir)
    live: dict[str, str] = {}  # relative path -> frame id
    retiring: list[tuple[str, list[str]]] = []
    flagged_before: set[str] = set()
    for frame_id, paths_json, missing, retiring_flag in db.execute(
        "SELECT id, image_paths, missing_image, retiring FROM frames"
    ):
        paths = json.loads(paths_json)
        if retiring_flag:
            retiring.append((frame_id, paths))
            continue
        if missing:
            flagged_before.add(frame_id)
        for path in paths:
            live[path] = frame_id
    retiring_files = {path for _, paths in retiring for path in paths}
    orphans = sorted(p for p in scan.files if p not in live and p not in retiring_files)
    considered = len(scan.files) - len(retiring_files & scan.files.keys())
    if (
        not force
        and len(orphans) > ORPHAN_ALLOWANCE
        and len(orphans) > MAX_ORPHAN_FRACTION * considered
    ):
        raise ReconcileAbortedError(
            f"{data_dir / IMAGES_DIRNAME}: {len(orphans)} of {considered} image files have no "
            "row in edge.db; start-up clean-up would delete more than half of them, so it "
            "deleted nothing. Check that the right disk is mounted and edge.db belongs to "
            "these images; open the store with force_reconcile to delete them anyway"
        )

    remove_files(data_dir / p for p in scan.temp_files)
    remove_files(data_dir / p for p in orphans)
    for frame_id, paths in retiring:
        remove_files(data_dir / p for p in paths)
        delete_rows(db, [frame_id])
    images_dir = data_dir / IMAGES_DIRNAME
    prune_empty_dirs(
        [(data_dir / p).parent for p in orphans + scan.temp_files + sorted(retiring_files)],
        images_dir,
        set(),
    )

    missing = {frame_id for path, frame_id in live.items() if path not in scan.files}
    newly = sorted(missing - flagged_before)
    with db.atomic():
        for frame_id in newly:
            db.execute("UPDATE frames SET missing_image = 1 WHERE id = ?", [frame_id])
        for frame_id in flagged_before - missing:
            db.execute("UPDATE frames SET missing_image = 0 WHERE id = ?", [frame_id])
        report = ReconcileReport(
            image_files=len(scan.files),
            orphans_removed=orphans,
            temp_files_removed=sorted(scan.temp_files),
            missing_flagged=newly,
            missing_total=len(missing),
            retirements_finished=len(retiring),
        )
        if orphans or scan.temp_files or newly or retiring:
            db.table("events").insert(
                event_row(
                    "reconcile",
                    f"start-up: {len(orphans)} orphan files and {len(scan.temp_files)} temp "
                    f"files removed, {len(newly)} frames flagged missing_image",
                    {
                        "orphans_removed": orphans[:100],
                        "temp_files_removed": report.temp_files_removed[:100],
                        "missing_flagged": newly[:100],
                        "retirements_finished": len(retiring),
                    },
                )
            )
        for frame_id in newly:
            db.table("events").insert(
                event_row(
                    "missing-image", "image files of a logged frame are missing", {}, frame_id
                )
            )
    if scan.foreign:
        logger.warning("images directory holds %d files the store did not write", len(scan.foreign))
    kept = sum(size for path, size in scan.files.items() if path in live)
    return report, kept


def delete_rows(db: Database, frame_ids: list[str]) -> None:
    """Delete frames with their results and decisions, in one transaction."""
    with db.atomic():
        for table in ("results", "decisions"):
            db.conn.executemany(f"DELETE FROM {table} WHERE frame_id = ?", [[i] for i in frame_ids])
        db.conn.executemany("DELETE FROM frames WHERE id = ?", [[i] for i in frame_ids])
