"""Behavioural checks of a model on a suite: the same answer twice, the same alarms in a
mirrored image, and threat image projection (a threat added to a clean bag must alarm
there, and the alarm must clear when it is taken out again).

Projection works in attenuation space, as the simulator does: frames hold transmission
(AIR_LEVEL = open air), attenuations add, so adding a threat multiplies each channel by
exp(-A_threat) and removing it divides by the same factor.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.detector import Detector
from edge.frames import AIR_LEVEL, Detections, Frame
from edge.sim.scene import object_attenuation
from edge.sim.shapes import THREATS
from edge.validation.read_ahead import ReadAhead
from edge.validation.runner import ModelRun
from edge.validation.suite import Suite, SuiteImage
from edge.validation.suite_read import load_suite_image

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class BehaviourCheck:
    """One check: how many cases ran and passed; `failed` names the images to look at;
    `not_run` says why nothing could be tested (a failure for the gate)."""

    name: str
    ran: int
    passed: int
    failed: tuple[str, ...] = ()
    not_run: str | None = None
    cases: tuple[dict[str, Any], ...] = field(default=())

    @property
    def rate(self) -> float:
        return self.passed / self.ran if self.ran else math.nan

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ran": self.ran,
            "passed": self.passed,
            "rate": None if not self.ran else self.rate,
            "failed": list(self.failed),
            "not_run": self.not_run,
            "cases": list(self.cases),
        }


def pick(images: Sequence[SuiteImage], count: int, seed: int) -> list[SuiteImage]:
    """`count` images drawn without replacement, seeded, kept in suite order."""
    if count >= len(images):
        return list(images)
    chosen = np.random.default_rng([seed, 3]).choice(len(images), size=count, replace=False)
    return [images[i] for i in sorted(int(i) for i in chosen)]


def iou(a: Box, b: Box) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _channels_of(run: ModelRun) -> bool:
    return run.model.representation == "dual_energy"


def _frame(suite: Suite, run: ModelRun, image: SuiteImage) -> Frame:
    """The image as the run screened it: the frame it kept (read and hash-checked then, see
    `behaviour_refs`), else read and checked again."""
    kept = run.kept.get(image.ref)
    return kept if kept is not None else load_suite_image(image, suite, channels=_channels_of(run))


def check_repeat(
    detector: Detector, suite: Suite, run: ModelRun, images: Sequence[SuiteImage]
) -> BehaviourCheck:
    """The images screened again must give exactly the same boxes, scores and classes."""
    failed = []
    for image in images:
        again = detector.detect(_frame(suite, run, image))
        first = run.frames[image.ref].detections
        same = all(
            np.array_equal(getattr(first, name), getattr(again.detections, name))
            for name in ("boxes", "scores", "class_ids")
        )
        if not same:
            failed.append(image.ref)
    return BehaviourCheck("repeat", len(images), len(images) - len(failed), tuple(failed))


def _operating(det: Detections, thresholds: npt.NDArray[np.float32]) -> Detections:
    return det.select(det.scores > thresholds[det.class_ids])


def _best_boxes(det: Detections) -> dict[int, Box]:
    best: dict[int, tuple[float, Box]] = {}
    for box, score, cls in zip(
        det.boxes.tolist(), det.scores.tolist(), det.class_ids.tolist(), strict=True
    ):
        if cls not in best or score > best[cls][0]:
            best[cls] = (score, (box[0], box[1], box[2], box[3]))
    return {cls: item[1] for cls, item in best.items()}


def check_flip(
    detector: Detector, suite: Suite, run: ModelRun, images: Sequence[SuiteImage]
) -> BehaviourCheck:
    """Mirrored left to right, an image must alarm for the same classes, each class's best
    box (mapped back) overlapping the original's by IoU >= 0.5."""
    thresholds = np.asarray(run.model.thresholds, np.float32)
    failed, cases = [], []
    for image in images:
        frame = _frame(suite, run, image)
        if frame.rgb is not None:
            mirrored = Frame(rgb=np.ascontiguousarray(frame.rgb[:, ::-1]))
        else:
            assert frame.high is not None
            low = None if frame.low is None else np.ascontiguousarray(frame.low[:, ::-1])
            mirrored = Frame(high=np.ascontiguousarray(frame.high[:, ::-1]), low=low)
        width = frame.shape[1]
        found = _operating(detector.detect(mirrored).detections, thresholds)
        back = found.boxes.copy()
        back[:, 0], back[:, 2] = width - found.boxes[:, 2], width - found.boxes[:, 0]
        original = _best_boxes(run.operating(image.ref))
        flipped = _best_boxes(Detections(back, found.scores, found.class_ids))
        agree = set(original) == set(flipped) and all(
            iou(original[c], flipped[c]) >= 0.5 for c in original
        )
        if not agree:
            failed.append(image.ref)
            names = run.model.classes
            cases.append(
                {
                    "image": image.ref,
                    "original": sorted(names[c] for c in original),
                    "flipped": sorted(names[c] for c in flipped),
                }
            )
    return BehaviourCheck(
        "flip", len(images), len(images) - len(failed), tuple(failed), cases=tuple(cases)
    )


def _place(
    high: npt.NDArray[np.uint16], extent: float, rng: np.random.Generator
) -> tuple[float, float]:
    """A spot inside the bag for an object of this half-extent: of 8 random candidates,
    the one with the least attenuation already there (an unobstructed spot)."""
    attenuation = -np.log(np.maximum(high.astype(np.float32), 1.0) / np.float32(AIR_LEVEL))
    ys, xs = np.nonzero(attenuation > 0.05)
    h, w = high.shape
    if xs.size == 0:
        return w / 2, h / 2
    x0, x1 = xs.min() + extent, xs.max() - extent
    y0, y1 = ys.min() + extent, ys.max() - extent
    if x0 >= x1 or y0 >= y1:
        return float(xs.mean()), float(ys.mean())
    best, spot = math.inf, (float(x0), float(y0))
    r = max(2, int(extent * 0.6))
    for _ in range(8):
        cx, cy = float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1))
        window = attenuation[int(cy) - r : int(cy) + r, int(cx) - r : int(cx) + r]
        cost = float(window.mean()) if window.size else math.inf
        if cost < best:
            best, spot = cost, (cx, cy)
    return spot


def threat_transmission(attenuation: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(H, W) factor exp(-A) a threat's attenuation multiplies a channel by, blurred as the
    detector blurs everything else in a real scan."""
    blurred = cv2.GaussianBlur(np.exp(-attenuation), (0, 0), 0.7)
    return np.asarray(blurred, np.float32)


def scale_counts(
    channel: npt.NDArray[np.uint16], factor: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint16]:
    """Counts times a factor, rounded and clipped to uint16 (projecting: exp(-A); removing:
    its inverse)."""
    scaled = np.rint(channel.astype(np.float32) * factor)
    return np.asarray(np.clip(scaled, 0, 65535), np.uint16)


def check_projection(
    detector: Detector,
    suite: Suite,
    run: ModelRun,
    clean: Sequence[SuiteImage],
    *,
    per_class: int,
    min_iou: float,
    seed: int,
) -> BehaviourCheck:
    """`per_class` threats of each class the simulator can draw, each projected into a
    clean bag that did not alarm: an alarm of that class must overlap the threat's box by
    `min_iou`; with the threat removed, no alarm of that class may overlap it."""
    thresholds = np.asarray(run.model.thresholds, np.float32)
    classes = [c for c in run.model.classes if c in THREATS]
    usable = [im for im in clean if im.channels is not None and not len(run.operating(im.ref))]
    if not classes:
        return BehaviourCheck(
            "projection", 0, 0, not_run="no class of the model has a shape family"
        )
    if not usable:
        return BehaviourCheck(
            "projection", 0, 0, not_run="no clean dual-energy bag without an alarm to project into"
        )
    rng = np.random.default_rng([seed, 5])
    failed, cases = [], []
    made = _projections(suite, run, usable, [c for c in classes for _ in range(per_class)], rng)
    # The next case is read and projected on another thread while the model runs.
    with ReadAhead(made, ahead=2, name="edge-test-projection") as ready:
        for case in ready:
            found = _operating(detector.detect(case.projected).detections, thresholds)
            hit = _overlap(found, case.cls, case.box)
            gone = _operating(detector.detect(case.removed).detections, thresholds)
            left = _overlap(gone, case.cls, case.box)
            alarmed, cleared = hit >= min_iou, left < min_iou
            cases.append(
                {
                    "class": case.name,
                    "image": case.image.ref,
                    "box": [round(v, 1) for v in case.box],
                    "alarmed": alarmed,
                    "iou": round(hit, 3),
                    "cleared": cleared,
                }
            )
            if not (alarmed and cleared):
                failed.append(case.image.ref)
    return BehaviourCheck(
        "projection", len(cases), len(cases) - len(failed), tuple(failed), cases=tuple(cases)
    )


@dataclass(frozen=True)
class _Projection:
    """One projection case: a threat of class `name` (index `cls`) at `box` in `image`,
    the frame with it projected and the frame with it taken out again."""

    name: str
    cls: int
    image: SuiteImage
    box: Box
    projected: Frame
    removed: Frame


def _projections(
    suite: Suite,
    run: ModelRun,
    usable: Sequence[SuiteImage],
    names: Sequence[str],
    rng: np.random.Generator,
) -> Iterator[_Projection]:
    """The cases in order, one rng drawing them all (the same cases for the same seed)."""
    for k, name in enumerate(names):
        image = usable[(k + int(rng.integers(len(usable)))) % len(usable)]
        frame = load_suite_image(image, suite, channels=True)
        assert frame.high is not None and frame.low is not None
        threat = THREATS[name](rng)
        extent = float(np.abs(np.concatenate([p.points for p in threat.parts])).max())
        cx, cy = _place(frame.high, extent, rng)
        angle = float(rng.uniform(0, 360))
        h, w = frame.shape
        a_high, a_low, box = object_attenuation(threat, cx, cy, angle, h, w)
        t_high, t_low = threat_transmission(a_high), threat_transmission(a_low)
        projected = Frame(high=scale_counts(frame.high, t_high), low=scale_counts(frame.low, t_low))
        assert projected.high is not None and projected.low is not None
        removed = Frame(
            high=scale_counts(projected.high, np.float32(1) / t_high),
            low=scale_counts(projected.low, np.float32(1) / t_low),
        )
        yield _Projection(name, run.model.classes.index(name), image, box, projected, removed)


def _overlap(det: Detections, cls: int, box: Box) -> float:
    """The best IoU of a class-`cls` detection with `box` (0.0 when none)."""
    ious = [
        iou(tuple(b), box)
        for b, c in zip(det.boxes.tolist(), det.class_ids.tolist(), strict=True)
        if c == cls
    ]  # type: ignore[arg-type]
    return max(ious, default=0.0)
