"""Core value types: a dual-energy Frame, the one Detections type, and a screening Result."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.errors import BadInputError

# Calibrated 16-bit frames store transmission scaled so that open air reads AIR_LEVEL:
# I / I0 = value / AIR_LEVEL. Headroom above it keeps noisy air pixels from clipping.
AIR_LEVEL = 60000.0


@dataclass(frozen=True)
class Detections:
    """Boxes of one image: `boxes` (N, 4) float32 xyxy in frame pixels, `scores` (N,)
    float32 in [0, 1], `class_ids` (N,) int64 indices into the model's class list."""

    boxes: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    class_ids: npt.NDArray[np.int64]

    def __post_init__(self) -> None:
        boxes = (
            np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
            if np.size(self.boxes)
            else np.zeros((0, 4), np.float32)
        )
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        if np.ndim(self.boxes) not in (1, 2) or (
            np.size(self.boxes) and np.shape(self.boxes)[-1] != 4
        ):
            raise BadInputError(f"boxes: expected shape (N, 4), got {np.shape(self.boxes)}")
        n = boxes.shape[0]
        if scores.shape[0] != n or class_ids.shape[0] != n:
            raise BadInputError(
                f"detections: expected {n} scores and class ids to match {n} boxes, "
                f"got {scores.shape[0]} scores and {class_ids.shape[0]} class ids"
            )
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "class_ids", class_ids)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def select(self, keep: npt.NDArray[Any]) -> Detections:
        """The subset chosen by a boolean mask or an index array."""
        return Detections(self.boxes[keep], self.scores[keep], self.class_ids[keep])

    def to_list(self, class_names: list[str]) -> list[dict[str, Any]]:
        """JSON-ready list of {class, score, box [x1, y1, x2, y2]} in frame pixels."""
        return [
            {
                "class": class_names[int(c)],
                "score": round(float(s), 4),
                "box": [round(float(v), 1) for v in b],
            }
            for b, s, c in zip(self.boxes, self.scores, self.class_ids, strict=True)
        ]


@dataclass
class Frame:
    """One view of one bag.

    `high`/`low`: (H, W) uint16 calibrated dual-energy channels (low may be None for a
    single-energy scanner); `rgb`: (H, W, 3) uint8 pseudo-colour, set when the source is
    an 8-bit rendered image rather than raw channels.
    """

    high: npt.NDArray[np.uint16] | None = None
    low: npt.NDArray[np.uint16] | None = None
    rgb: npt.NDArray[np.uint8] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.high is None and self.rgb is None:
            raise BadInputError("frame: expected dual-energy channels or an RGB image, got neither")
        if self.high is not None:
            if self.high.ndim != 2 or self.high.dtype != np.uint16:
                raise BadInputError(
                    f"frame: expected high channel (H, W) uint16, got {self.high.shape} {self.high.dtype}"
                )
            if self.low is not None and (
                self.low.shape != self.high.shape or self.low.dtype != np.uint16
            ):
                raise BadInputError(
                    f"frame: expected low channel {self.high.shape} uint16, got {self.low.shape} {self.low.dtype}"
                )
        if self.rgb is not None and (
            self.rgb.ndim != 3 or self.rgb.shape[2] != 3 or self.rgb.dtype != np.uint8
        ):
            raise BadInputError(
                f"frame: expected RGB (H, W, 3) uint8, got {self.rgb.shape} {self.rgb.dtype}"
            )

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        src = self.high if self.high is not None else self.rgb
        assert src is not None
        return int(src.shape[0]), int(src.shape[1])


class ScreeningState(enum.StrEnum):
    SCREENED = "SCREENED"
    NOT_SCREENED = "NOT_SCREENED"


@dataclass(frozen=True)
class Result:
    """The outcome of screening one frame. `alarm` is None exactly when NOT SCREENED."""

    state: ScreeningState
    detections: Detections
    model: str
    reason: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def alarm(self) -> bool | None:
        if self.state is ScreeningState.NOT_SCREENED:
            return None
        return len(self.detections) > 0

    @classmethod
    def not_screened(cls, reason: str, model: str = "") -> Result:
        return cls(ScreeningState.NOT_SCREENED, Detections.empty(), model, reason=reason)
