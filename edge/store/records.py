"""What reads of the log return: frames, results and decisions as typed records."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from edge.errors import BadInputError

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class RowLike(Protocol):
    """A sqlite3.Row or a dict of column -> value."""

    def __getitem__(self, key: str, /) -> Any: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with microseconds and "Z": sorts as text in time order."""
    return to_utc(moment).strftime(TIME_FORMAT)


def parse_time(value: datetime | str) -> str:
    """A query bound as stored text; accepts a datetime or any ISO 8601 string."""
    if isinstance(value, datetime):
        return iso(value)
    try:
        return iso(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        raise BadInputError(f"time: expected ISO 8601, got {value!r}") from None


def to_json(value: Any) -> str:
    # default=str: scanner metadata may carry numpy scalars or paths; keep them readable.
    return json.dumps(value, separators=(",", ":"), default=str)


def model_parts(model: str) -> tuple[str, str]:
    """("name", "version") from "name@version"; a bare name has version ""."""
    name, _, version = model.rpartition("@")
    return (name, version) if name else (model, "")


@dataclass(frozen=True)
class StoredResult:
    frame_id: str
    state: str  # SCREENED | NOT_SCREENED
    alarm: bool | None  # None exactly when NOT_SCREENED
    reason: str | None
    model_name: str
    model_version: str
    model_sha256: str | None
    detections: list[dict[str, Any]]  # {class, class_id, score, box [x1, y1, x2, y2]} pixels
    timings_ms: dict[str, float]
    screened_at: str

    @property
    def model(self) -> str:
        return f"{self.model_name}@{self.model_version}" if self.model_version else self.model_name

    @classmethod
    def from_row(cls, row: RowLike) -> StoredResult:
        return cls(
            frame_id=row["frame_id"],
            state=row["state"],
            alarm=None if row["alarm"] is None else bool(row["alarm"]),
            reason=row["reason"],
            model_name=row["model_name"] or "",
            model_version=row["model_version"] or "",
            model_sha256=row["model_sha256"],
            detections=json.loads(row["detections"] or "[]"),
            timings_ms=json.loads(row["timings"] or "{}"),
            screened_at=row["screened_at"],
        )


@dataclass(frozen=True)
class StoredDecision:
    frame_id: str
    decision: str  # clear | search | threat
    user: str | None
    at: str
    note: str | None = None

    @classmethod
    def from_row(cls, row: RowLike) -> StoredDecision:
        return cls(row["frame_id"], row["decision"], row["user"], row["at"], row["note"])


@dataclass(frozen=True)
class StoredFrame:
    """One logged frame. `image_paths` are relative to the data directory, one per channel."""

    id: str
    received: str
    source: str | None
    scanner_frame_id: str | None
    bag: str | None
    lane: int | None
    view: str | None
    width: int
    height: int
    channels: list[str]
    image_paths: list[str]
    bytes: int
    sha256: str
    pinned: bool = False
    missing_image: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    state: str | None = None  # of the latest result; None until screened
    alarm: bool | None = None
    decision: str | None = None  # the latest operator decision
    result: StoredResult | None = None  # filled by get_frame
    decisions: list[StoredDecision] = field(default_factory=list)  # filled by get_frame

    @property
    def disputed(self) -> bool:
        """The operator's decision disagrees with the model's alarm."""
        return (self.alarm is True and self.decision == "clear") or (
            self.alarm is False and self.decision in ("search", "threat")
        )

    def frame_meta(self) -> dict[str, Any]:
        """Frame.meta for the pixels read back: the stored metadata and the log's fields."""
        return {
            **self.metadata,
            "frame_id": self.id,
            "received": self.received,
            "source": self.source,
            "bag": self.bag,
            "lane": self.lane,
            "view": self.view,
            "scanner_frame_id": self.scanner_frame_id,
        }

    @classmethod
    def from_row(cls, row: RowLike) -> StoredFrame:
        return cls(
            id=row["id"],
            received=row["received"],
            source=row["source"],
            scanner_frame_id=row["scanner_frame_id"],
            bag=row["bag"],
            lane=row["lane"],
            view=row["view"],
            width=row["width"],
            height=row["height"],
            channels=json.loads(row["channels"]),
            image_paths=json.loads(row["image_paths"]),
            bytes=row["bytes"],
            sha256=row["sha256"],
            pinned=bool(row["pinned"]),
            missing_image=bool(row["missing_image"]),
            metadata=json.loads(row["metadata"] or "{}"),
            state=row["state"],
            alarm=None if row["alarm"] is None else bool(row["alarm"]),
            decision=row["decision"],
        )


@dataclass(frozen=True)
class ReconcileReport:
    """What start-up found and did: removed orphan and temp files, flagged missing images."""

    image_files: int
    orphans_removed: list[str]
    temp_files_removed: list[str]
    missing_flagged: list[str]  # frame ids newly flagged missing_image
    missing_total: int
    retirements_finished: int  # frames retention had started deleting before a crash


def event_row(
    kind: str, message: str, details: dict[str, Any] | None = None, frame_id: str | None = None
) -> dict[str, Any]:
    """A row for the `events` table, stamped now."""
    return {
        "at": iso(utc_now()),
        "kind": kind,
        "message": message,
        "frame_id": frame_id,
        "details": to_json(details or {}),
    }
