"""The worst failures as the report shows them: a small JPEG of each image (a data: URI, so
the report needs no other file) with its ground-truth boxes and detections.

The I/O of the report's evidence: suite images are read again (hash-checked) here.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.pseudocolor import render_pseudocolor
from edge.validation.evidence import Failure, TruthBox, match_image
from edge.validation.runner import ModelRun
from edge.validation.suite import Suite
from edge.validation.suite_read import load_suite_image

THUMBNAIL_WIDTH = 240  # pixels; the boxes stay in image pixels (the SVG scales them)
JPEG_QUALITY = 80


def display_rgb(suite: Suite, ref: str) -> npt.NDArray[np.uint8]:
    """(H, W, 3) uint8 RGB as operators see the image (its pseudo-colour file, or the
    standard colours rendered from its dual-energy pair)."""
    image = next(im for im in suite.images if im.ref == ref)
    frame = load_suite_image(image, suite, channels=False)
    if frame.rgb is not None:
        return frame.rgb
    assert frame.high is not None  # a Frame has channels or RGB
    return render_pseudocolor(frame.high, frame.low)


def thumbnail_uri(rgb: npt.NDArray[np.uint8], width: int = THUMBNAIL_WIDTH) -> str:
    """A JPEG data: URI of the image scaled to at most `width` pixels wide."""
    h, w = rgb.shape[:2]
    if w > width:
        size = (width, max(1, round(h * width / w)))
        rgb = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), np.uint8)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise RuntimeError("JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode("ascii")


def _box(values: Sequence[float]) -> list[float]:
    return [round(float(v), 1) for v in values]


def gallery(
    suite: Suite, run: ModelRun, failures: Sequence[Failure], truth: dict[str, list[TruthBox]]
) -> list[dict[str, Any]]:
    """One entry per failure: the image (thumbnail, original size), its boxes (xyxy image
    pixels) and what went wrong."""
    classes = run.model.classes
    entries = []
    for f in failures:
        rgb = display_rgb(suite, f.ref)
        boxes = truth.get(f.ref, [])
        det = run.operating(f.ref)
        m = match_image(det, boxes)
        entries.append(
            {
                "image": f.ref,
                "severity": round(f.severity, 4),
                "reasons": list(f.reasons),
                "width": int(rgb.shape[1]),
                "height": int(rgb.shape[0]),
                "thumbnail": thumbnail_uri(rgb),
                "truth": [
                    {
                        "class": classes[t.class_id],
                        "box": _box(t.box),
                        "found": m.gt_to_det[j] >= 0
                        and int(det.class_ids[m.gt_to_det[j]]) == t.class_id,
                    }
                    for j, t in enumerate(boxes)
                ],
                "detections": [
                    {
                        "class": classes[int(det.class_ids[i])],
                        "score": round(float(det.scores[i]), 4),
                        "box": _box(det.boxes[i]),
                        "correct": j >= 0 and boxes[j].class_id == int(det.class_ids[i]),
                    }
                    for i, j in enumerate(m.det_to_gt)
                ],
            }
        )
    return entries
