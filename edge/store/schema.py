"""The log's SQLite schema as named migrations, each applied once and recorded in `migrations`.

Add a migration by appending a function to MIGRATIONS; never edit or reorder one that has
shipped. Each runs in one transaction together with its `migrations` row, so a crash
leaves it either applied and recorded or neither.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlite_utils import Database

DECISIONS = ("clear", "search", "threat")


@dataclass(frozen=True)
class Migration:
    name: str
    apply: Callable[[Database], None]


def _initial(db: Database) -> None:
    db.table("frames").create(
        {
            "id": str,  # "f-YYYYMMDD-NNNNNN", unique across restarts
            "received": str,  # ISO 8601 UTC, microseconds, "Z"
            "source": str,
            "scanner_frame_id": str,
            "bag": str,
            "lane": int,
            "view": str,
            "width": int,
            "height": int,
            "channels": str,  # JSON list: ["high", "low"], ["high"] or ["rgb"]
            "image_paths": str,  # JSON list, relative to the data directory, channel order
            "bytes": int,  # bytes of the image files on disk
            "sha256": str,  # of the pixel bytes (CONTRACT.md section 1 layout)
            "pinned": int,
            "missing_image": int,  # set by start-up reconciliation
            "retiring": int,  # retention is deleting it: files first, then this row
            "metadata": str,  # JSON object
            # Summary of the latest result and decision, kept by the writer in the same
            # transaction as those rows, so time/alarm queries and retention need no joins.
            "state": str,
            "alarm": int,
            "decision": str,
        },
        pk="id",
        not_null=["received", "width", "height", "channels", "image_paths", "bytes", "sha256"],
        defaults={"pinned": 0, "missing_image": 0, "retiring": 0, "metadata": "{}"},
    )
    db.table("results").create(
        {
            "id": int,
            "frame_id": str,
            "state": str,  # SCREENED | NOT_SCREENED
            "alarm": int,  # 1, 0, or NULL exactly when NOT_SCREENED
            "reason": str,
            "model_name": str,
            "model_version": str,
            "model_sha256": str,
            "detections": str,  # JSON list of {class, class_id, score, box [x1, y1, x2, y2]}
            "timings": str,  # JSON object of stage -> milliseconds
            "screened_at": str,
        },
        pk="id",
        foreign_keys=[("frame_id", "frames", "id")],
        not_null=["frame_id", "state", "screened_at"],
    )
    db.table("decisions").create(
        {"id": int, "frame_id": str, "decision": str, "user": str, "at": str, "note": str},
        pk="id",
        foreign_keys=[("frame_id", "frames", "id")],
        not_null=["frame_id", "decision", "at"],
    )
    db.table("id_counters").create({"day": str, "last": int}, pk="day", not_null=["last"])
    db.table("frames").create_index(["received"])
    db.table("frames").create_index(["alarm", "received"])
    db.table("frames").create_index(["state", "received"])
    db.table("frames").create_index(["bag"])
    db.table("results").create_index(["frame_id"])
    db.table("results").create_index(["screened_at"])
    db.table("decisions").create_index(["frame_id"])
    # Partial: health counts flagged frames often, and they are few.
    db.execute("CREATE INDEX idx_frames_missing ON frames(id) WHERE missing_image = 1")


def _exports_and_events(db: Database) -> None:
    db.table("exports").create(
        {
            "id": int,
            "created": str,
            "path": str,
            "filters": str,  # JSON object of the export's options
            "frames": int,
            "bytes": int,
            "manifest_sha256": str,
        },
        pk="id",
        not_null=["created", "path"],
    )
    db.table("events").create(
        {
            "id": int,
            "at": str,
            "kind": str,  # logging-degraded, logging-recovered, reconcile, retention, ...
            "message": str,
            "frame_id": str,  # no foreign key: events outlive the frames they name
            "details": str,  # JSON object
        },
        pk="id",
        not_null=["at", "kind"],
    )
    db.table("events").create_index(["at"])
    db.table("events").create_index(["kind", "at"])


def _test_runs(db: Database) -> None:
    # Few columns on purpose: every CREATE statement lives in the schema's first page. What
    # a listing shows beyond these is in `summary` (edge/store/test_runs.py).
    db.table("test_runs").create(
        {
            "id": str,  # "t-YYYYMMDD-HHMMSS-xxxxxx": sorts by time
            "created": str,
            "passed": int,
            "summary": str,  # JSON: kind, model, baseline, suite, label version, figures
            "report": str,  # the JSON report document
        },
        pk="id",
        not_null=["created", "passed", "summary", "report"],
    )


def _audit_log(db: Database) -> None:
    # Append-only, hash-chained (edge/upgrade/audit.py): each row's `hash` covers its fields
    # and the previous row's hash. The triggers stop accidental edits; the chain shows any.
    db.table("audit_log").create(
        {
            "id": int,  # 1, 2, 3, ... without gaps
            "at": str,  # ISO 8601 UTC
            "actor": str,  # who: a user name, "cli:<login>", "service"
            "action": str,  # upgrade-started, upgrade-refused, rollback, login, export, ...
            "message": str,
            "bundle_sha256": str,
            "key_id": str,  # minisign key id of the bundle's signer
            "model": str,  # name@version (or the model directory)
            "details": str,  # JSON object
            "prev_hash": str,  # 64 zeros for the first row
            "hash": str,
        },
        pk="id",
        not_null=["at", "actor", "action", "prev_hash", "hash"],
    )
    for event in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
        )


MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_frames_results_decisions", _initial),
    Migration("0002_exports_events", _exports_and_events),
    Migration("0003_test_runs", _test_runs),
    Migration("0004_audit_log", _audit_log),
)


def apply_migrations(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
    """Apply each migration not yet recorded, in order; returns the names applied now."""
    db.table("migrations").create({"name": str, "applied_at": str}, pk="name", if_not_exists=True)
    done = {row["name"] for row in db.table("migrations").rows}
    applied = []
    for migration in migrations:
        if migration.name in done:
            continue
        with db.atomic():
            migration.apply(db)
            db.table("migrations").insert(
                {"name": migration.name, "applied_at": datetime.now(UTC).isoformat()}
            )
        applied.append(migration.name)
    return applied
