"""Rows the writer inserts, built from the appliance's types, and the frame id allocator."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from sqlite_utils import Database

from edge.frames import Result
from edge.store.images import EncodedFrame
from edge.store.records import iso, model_parts, to_json, utc_now


class FrameFields(TypedDict, total=False):
    """What Store.add_frame takes besides the pixels."""

    source: str | None  # "serial:/dev/ttyUSB0", "folder", "upload", "demo", ...
    bag: str | None
    lane: int | None
    view: str | None
    scanner_frame_id: str | None
    metadata: dict[str, Any] | None  # merged over frame.meta; JSON-serialisable
    received: datetime | None  # default now (UTC)
    pinned: bool


class FrameIds:
    """Allocates "f-YYYYMMDD-NNNNNN": a per-UTC-day counter, unique across restarts.

    The counter's high-water mark is committed in the same transaction as the frame row
    (table `id_counters`), so rows deleted by retention never free an id for reuse. An id
    given to a frame whose write then failed is skipped, not reused. Writer thread only.
    """

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def allocate(self, db: Database, received: datetime) -> tuple[str, str, int]:
        """(frame id, day, number) for a frame received at `received` (UTC)."""
        day = f"{received:%Y%m%d}"
        if day not in self._last:
            row = db.execute("SELECT last FROM id_counters WHERE day = ?", [day]).fetchone()
            self._last[day] = int(row[0]) if row else 0
        self._last[day] += 1
        number = self._last[day]
        return f"f-{day}-{number:06d}", day, number


def frame_row(
    frame_id: str,
    received: datetime,
    encoded: EncodedFrame,
    image_paths: list[str],
    metadata: dict[str, Any],
    fields: dict[str, Any],
) -> dict[str, Any]:
    """The `frames` row; `fields`: source, bag, lane, view, scanner_frame_id, pinned."""
    unknown = set(fields) - {"source", "bag", "lane", "view", "scanner_frame_id", "pinned"}
    if unknown:
        raise TypeError(f"add_frame: unexpected fields {sorted(unknown)}")
    lane = fields.get("lane")
    return {
        "id": frame_id,
        "received": iso(received),
        "source": fields.get("source"),
        "scanner_frame_id": _text(fields.get("scanner_frame_id")),
        "bag": _text(fields.get("bag")),
        "lane": None if lane is None else int(lane),
        "view": _text(fields.get("view")),
        "width": encoded.width,
        "height": encoded.height,
        "channels": to_json(encoded.channels),
        "image_paths": to_json(image_paths),
        "bytes": encoded.nbytes,
        "sha256": encoded.sha256,
        "pinned": int(bool(fields.get("pinned", False))),
        "missing_image": 0,
        "retiring": 0,
        "metadata": to_json(metadata),
        "state": None,
        "alarm": None,
        "decision": None,
    }


def result_row(
    frame_id: str, result: Result, model_sha256: str | None, class_names: list[str] | None
) -> dict[str, Any]:
    """The `results` row. Detections are in frame pixels; `class` is the class name when
    `class_names` is given, else the class id as text."""
    name, version = model_parts(result.model)
    detections = []
    for box, score, class_id in zip(
        result.detections.boxes, result.detections.scores, result.detections.class_ids, strict=True
    ):
        cid = int(class_id)
        label = class_names[cid] if class_names is not None and cid < len(class_names) else str(cid)
        detections.append(
            {
                "class": label,
                "class_id": cid,
                "score": round(float(score), 4),
                "box": [round(float(v), 1) for v in box],
            }
        )
    alarm = result.alarm
    return {
        "frame_id": frame_id,
        "state": str(result.state),
        "alarm": None if alarm is None else int(alarm),
        "reason": result.reason,
        "model_name": name,
        "model_version": version,
        "model_sha256": model_sha256,
        "detections": to_json(detections),
        "timings": to_json({k: round(float(v), 3) for k, v in result.timings_ms.items()}),
        "screened_at": iso(utc_now()),
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
