"""Run one model over a suite: every image read (hash-checked), screened, timed.

The model is loaded with its thresholds lowered to the policy's score floor, so one
inference per image serves both the box metrics (which need low-scoring boxes) and the bag
figures (read at the model's own thresholds afterwards: NMS keeps a box only for a
higher-scoring box of its class, so what scores above a threshold is the same either way).
The next images are read, decoded and preprocessed on a second thread while the model runs;
a frame's latency still counts its preprocessing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Collection, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge.detector import Detector
from edge.detector.detector import PreparedFrame
from edge.detector.manifest import ModelSpec, bind_graph, read_model_dir
from edge.detector.session import create_session, graph_tensors
from edge.errors import BadInputError
from edge.frames import Detections, Frame
from edge.validation.read_ahead import ReadAhead
from edge.validation.slices import BagTruth
from edge.validation.suite import Suite, SuiteImage
from edge.validation.suite_read import load_suite_image
from edge.validation.thresholds import Judged, ThresholdRule

PREFETCH = 3
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ModelInfo:
    """A model directory as a test run names it; `thresholds` its operating point."""

    directory: Path
    name: str
    version: str
    sha256: str
    classes: tuple[str, ...]
    thresholds: tuple[float, ...]
    representation: str
    judged: Judged  # the thresholds above per class, with their source

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.version}"

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "id": self.model_id,
            "sha256": self.sha256,
            "dir": str(self.directory),
            "classes": list(self.classes),
            "thresholds": dict(zip(self.classes, self.thresholds, strict=True)),
            "representation": self.representation,
            "operating_point": self.judged.as_json(),
        }


def read_for_test(
    model_dir: Path | str, thresholds: ThresholdRule | None = None
) -> tuple[ModelSpec, bytes, ModelInfo]:
    """The model directory read and hash-checked, and the model as a test names it, judged
    at the thresholds `thresholds` chooses for it (default: its manifest's)."""
    spec, model_bytes = read_model_dir(model_dir)
    manifest = spec.manifest
    judged = (thresholds or ThresholdRule()).judge(manifest)
    info = ModelInfo(
        spec.directory, manifest.name, manifest.version, spec.model_sha256,
        tuple(manifest.classes), judged.thresholds, manifest.input.representation, judged,
    )  # fmt: skip
    return spec, model_bytes, info


def detector_for(
    spec: ModelSpec, model_bytes: bytes, info: ModelInfo, score_floor: float
) -> Detector:
    """The model (warmed up) keeping every box above `score_floor` (and its thresholds)."""
    floor = min(score_floor, *info.thresholds)
    low = dataclasses.replace(
        spec, manifest=spec.manifest.model_copy(update={"thresholds": {"default": floor}})
    )
    session = create_session(model_bytes)
    detector = Detector(low, session, bind_graph(low.manifest, *graph_tensors(session)))
    grey = np.full((spec.manifest.input.height, spec.manifest.input.width, 3), 114, np.uint8)
    detector.detect_rgb(grey)  # warm-up: the first inference allocates
    return detector


def load_for_test(
    model_dir: Path | str, score_floor: float, thresholds: ThresholdRule | None = None
) -> tuple[Detector, ModelInfo]:
    """The model (hash-checked, warmed up) keeping every box above `score_floor`, judged
    at the thresholds `thresholds` chooses for it (default: its manifest's)."""
    spec, model_bytes, info = read_for_test(model_dir, thresholds)
    return detector_for(spec, model_bytes, info, score_floor), info


@dataclass(frozen=True)
class FrameResult:
    """One image's detections above the score floor; times in ms (detect() in all, and
    its inference alone)."""

    ref: str
    detections: Detections
    latency_ms: float
    inference_ms: float


@dataclass(frozen=True)
class ModelRun:
    model: ModelInfo
    suite_name: str
    suite_sha256: str
    label_version: int
    frames: dict[str, FrameResult]
    wall_s: float
    kept: dict[str, Frame] = field(default_factory=dict, repr=False, compare=False)

    def max_scores(self, bag: BagTruth) -> npt.NDArray[np.float32]:
        """(C,) best score per class over the bag's images (0 where none)."""
        best = np.zeros(len(self.model.classes), np.float32)
        for ref in bag.images:
            det = self.frames[ref].detections
            np.maximum.at(best, det.class_ids, det.scores)
        return best

    def operating(self, ref: str) -> Detections:
        """An image's detections at the model's operating point (score > class threshold)."""
        det = self.frames[ref].detections
        thresholds = np.asarray(self.model.thresholds, np.float32)
        return det.select(det.scores > thresholds[det.class_ids])


def check_comparable(candidate: ModelRun, baseline: ModelRun) -> None:
    """Two runs compare only on the same suite at the same label version."""
    if (candidate.suite_sha256, candidate.label_version) != (
        baseline.suite_sha256,
        baseline.label_version,
    ):
        raise BadInputError(
            f"cannot compare: candidate ran on suite {candidate.suite_name} label version "
            f"{candidate.label_version} ({candidate.suite_sha256[:12]}), baseline on "
            f"{baseline.suite_name} label version {baseline.label_version} "
            f"({baseline.suite_sha256[:12]}); run both on the same suite version"
        )


def _prepared(
    detector: Detector,
    suite: Suite,
    images: Sequence[SuiteImage],
    channels: bool,
    keep: Collection[str],
) -> Generator[tuple[SuiteImage, PreparedFrame, Frame | None], None, None]:
    """The images read, checked and preprocessed on a second thread, PREFETCH ahead; the
    frames of the images in `keep` come along (for the checks that screen them again).
    Not at a lower priority: a niced thread descheduled while it holds the GIL stalls the
    model's thread (tried: session.run took 4-23% longer)."""
    preprocessor = detector.preprocessor()  # used by the reading thread only

    def made() -> Iterator[tuple[SuiteImage, PreparedFrame, Frame | None]]:
        for image in images:
            frame = load_suite_image(image, suite, channels=channels)
            yield image, detector.prepare(frame, preprocessor), frame if image.ref in keep else None

    with ReadAhead(made(), ahead=PREFETCH, name="edge-test-read") as ready:
        yield from ready


def run_model(
    detector: Detector,
    info: ModelInfo,
    suite: Suite,
    progress: Progress | None = None,
    keep: Collection[str] = (),
) -> ModelRun:
    """Screen every suite image with the model; ModelRun keyed by image ref, suite order,
    holding the frames of the refs in `keep`."""
    start = time.perf_counter()
    results: dict[str, FrameResult] = {}
    kept: dict[str, Frame] = {}
    channels = info.representation == "dual_energy"
    total = len(suite.images)
    # closing: an error here stops the reading thread at once, not when garbage is collected.
    with contextlib.closing(
        _prepared(detector, suite, suite.images, channels, frozenset(keep))
    ) as prepared:
        for done, (image, ready, frame) in enumerate(prepared, start=1):
            run = detector.detect_prepared(ready)
            results[image.ref] = FrameResult(
                image.ref,
                run.detections,
                sum(run.timings_ms.values()),
                run.timings_ms.get("inference", 0.0),
            )
            if frame is not None:
                kept[image.ref] = frame
            if progress is not None:
                progress(done, total)
    return ModelRun(
        info, suite.name, suite.sha256, suite.label_version, results,
        time.perf_counter() - start, kept,
    )  # fmt: skip
