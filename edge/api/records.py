"""The API's one frame record, from memory (ScreenedFrame) or from the image log
(StoredFrame), and the frame-list filters applied to frames held in memory.

Every frame leaves the API with the same keys: id, time, bag, source, state, alarm,
reason, model, detections ({class, score, box [x1, y1, x2, y2]} in frame pixels), width,
height, logged, timings_ms, decision (the latest operator decision, or null).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from edge.errors import BadInputError
from edge.pipeline import ScreenedFrame
from edge.store import StoredFrame
from edge.store.records import parse_time

Decision = Literal["clear", "search", "threat"]
DecisionFilter = Literal["clear", "search", "threat", "none"]
# Ids the appliance gives (f-YYYYMMDD-NNNNNN, u-NNNNNN): checked before any file is named.
FRAME_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
NO_RESULT_REASON = "no screening result recorded (still queued, or the service stopped first)"


def screened_json(frame: ScreenedFrame, decision: str | None = None) -> dict[str, Any]:
    """The record of a frame held in memory; `calibration`: the scanner profile its raw
    channels were corrected with ({"profile": name}, or {"profile": null, "reason"}), null
    when none was applied."""
    return {
        **frame.to_dict(),
        "decision": decision,
        "calibration": frame.meta.get("calibration"),
    }


def stored_json(frame: StoredFrame) -> dict[str, Any]:
    """The record of a logged frame; one without a result reads NOT SCREENED, never clear."""
    result = frame.result
    state: str
    reason: str | None
    if result is None:
        state, alarm, reason, model = "NOT_SCREENED", None, NO_RESULT_REASON, None
        detections: list[dict[str, Any]] = []
        timings: dict[str, float] = {}
    else:
        state, alarm, reason = result.state, result.alarm, result.reason
        model = result.model or None
        detections = [
            {"class": d.get("class"), "score": d.get("score"), "box": d.get("box")}
            for d in result.detections
        ]
        timings = {k: round(float(v), 2) for k, v in result.timings_ms.items()}
    return {
        "id": frame.id,
        "time": frame.received,
        "bag": frame.bag or frame.id,
        "source": frame.source,
        "state": state,
        "alarm": alarm,
        "reason": reason,
        "model": model,
        "detections": detections,
        "width": frame.width,
        "height": frame.height,
        "logged": True,
        "calibration": frame.metadata.get("calibration"),
        "timings_ms": timings,
        "decision": frame.decision,
    }


@dataclass(frozen=True)
class FrameQuery:
    """Filters of GET /api/frames (see edge.store.queries.frame_filter)."""

    since: str | None = None
    until: str | None = None
    alarm: bool | None = None
    not_screened: bool | None = None
    decision: DecisionFilter | None = None
    class_name: str | None = None
    source: str | None = None
    lane: int | None = None

    def __post_init__(self) -> None:
        for moment in (self.since, self.until):
            if moment is not None:
                parse_time(moment)  # BadInputError naming the bad value, with or without a log

    def store_filters(self) -> dict[str, Any]:
        """Keyword arguments of Store.list_frames / count_frames."""
        return {
            "since": self.since,
            "until": self.until,
            "alarm": self.alarm,
            "not_screened": self.not_screened,
            "decision": self.decision,
            "class_name": self.class_name,
            "source": self.source,
            "lane": self.lane,
        }

    def matches(self, frame: ScreenedFrame) -> bool:
        """For frames held in memory (no image log): lane and decision are not known there."""
        if self.lane is not None or self.decision not in (None, "none"):
            raise BadInputError("lane and decision filters need the image log, which is off")
        alarm = frame.result.alarm
        received = parse_time(frame.received)
        names = [d["class"] for d in frame.result.detections.to_list(list(frame.class_names))]
        return (
            (self.since is None or received >= parse_time(self.since))
            and (self.until is None or received < parse_time(self.until))
            and (self.alarm is None or alarm is self.alarm)
            and (self.not_screened is None or (alarm is None) is self.not_screened)
            and (self.class_name is None or self.class_name in names)
            and (self.source is None or frame.source == self.source)
        )
