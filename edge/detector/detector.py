"""The detector: a validated model directory, its warm session, and frame -> detections."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edge.detector.decoders import DECODERS, DecodeParams
from edge.detector.manifest import GraphBinding, ModelSpec, bind_graph, read_model_dir
from edge.detector.preprocess import LetterboxInfo, Preprocessor, unletterbox_boxes
from edge.detector.session import create_session, graph_tensors
from edge.errors import BadInputError, DetectorError, ManifestError
from edge.frames import Detections, Frame
from edge.pseudocolor import render_pseudocolor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectionRun:
    """Detections of one frame (boxes in frame pixels, clipped) and the time each stage took:
    `timings_ms` has "preprocess", "inference" and "postprocess", in milliseconds."""

    detections: Detections
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedFrame:
    """A frame turned into model input ahead of time (`Detector.prepare`, on another thread):
    `tensor` (1, C, H, W) float32, owned by this object; `info` its placement; the
    frame's (height, width) in pixels; `preprocess_ms` what preparing it took."""

    tensor: npt.NDArray[np.float32]
    info: LetterboxInfo
    frame_hw: tuple[int, int]
    preprocess_ms: float


class Detector:
    """One model ready to screen frames. `detect` is serialised by a lock: the input buffer is
    reused between calls, and one session already uses every core it was given."""

    def __init__(self, spec: ModelSpec, session: ort.InferenceSession, binding: GraphBinding):
        self._spec = spec
        self._session = session
        self._binding = binding
        manifest = spec.manifest
        self._decode = DECODERS[manifest.output.format]
        self._params = DecodeParams(
            thresholds=np.asarray(manifest.class_thresholds(), np.float32),
            iou_threshold=manifest.output.nms_iou,
        )
        self._preprocessor = Preprocessor(manifest.input)
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        model_dir: Path | str,
        providers: Sequence[str] | None = None,
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
        thresholds: Mapping[str, float] | None = None,
    ) -> Detector:
        """Validate the model directory and graph, build the session and warm it up once.

        `thresholds`: class -> score entries replacing the manifest's (the device's
        calibrated operating point; the caller checked they were made for this model).
        ManifestError when the directory, the graph or its first inference is unusable.
        """
        spec, model_bytes = read_model_dir(model_dir)
        if thresholds:
            merged = {**spec.manifest.thresholds, **thresholds}
            spec = replace(spec, manifest=spec.manifest.model_copy(update={"thresholds": merged}))
        session = create_session(
            model_bytes,
            providers=providers,
            intra_op_threads=intra_op_threads,
            inter_op_threads=inter_op_threads,
        )
        binding = bind_graph(spec.manifest, *graph_tensors(session))
        detector = cls(spec, session, binding)
        try:
            detector._warm_up()
        except DetectorError as exc:
            raise ManifestError(f"model.onnx: warm-up inference failed: {exc.message}") from exc
        logger.info(
            "model loaded",
            extra={
                "model": detector.model_id,
                "sha256": spec.model_sha256,
                "providers": session.get_providers(),
            },
        )
        return detector

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def model_id(self) -> str:
        """'name@version'."""
        return self._spec.manifest.model_id

    @property
    def model_sha256(self) -> str:
        """Hex SHA-256 of the model.onnx bytes the session was built from."""
        return self._spec.model_sha256

    @property
    def class_names(self) -> list[str]:
        return list(self._spec.manifest.classes)

    @property
    def thresholds(self) -> dict[str, float]:
        """The score threshold in force for each class (a detection needs score > it)."""
        manifest = self._spec.manifest
        return dict(zip(manifest.classes, manifest.class_thresholds(), strict=True))

    @property
    def session(self) -> ort.InferenceSession:
        """The underlying session (for benchmarks and diagnostics; `detect` is the API)."""
        return self._session

    @property
    def input_name(self) -> str:
        return self._binding.input_name

    def detect(self, frame: Frame) -> DetectionRun:
        """Detections for one frame in its pixel coordinates.

        Pseudo-colour models take `frame.rgb`, else the frame rendered from its channels;
        dual-energy models need both `frame.high` and `frame.low` (BadInputError if not).
        """
        if self._spec.manifest.input.representation == "dual_energy":
            if frame.high is None or frame.low is None:
                raise BadInputError(
                    f"frame: model {self.model_id} needs dual-energy high and low channels, got "
                    + ("an RGB-only frame" if frame.high is None else "a single-energy frame")
                )
            high, low = frame.high, frame.low
            return self._run(lambda: self._preprocessor.from_planes((high, low)), high.shape)
        if frame.rgb is not None:
            return self.detect_rgb(frame.rgb)
        assert frame.high is not None  # Frame guarantees channels or RGB
        # Rendered outside the lock, so it overlaps another caller's inference; still timed
        # as preprocessing.
        t0 = time.perf_counter()
        rgb = render_pseudocolor(frame.high, frame.low)
        render_ms = (time.perf_counter() - t0) * 1e3
        return self._run(lambda: self._preprocessor.from_rgb(rgb), rgb.shape[:2], render_ms)

    def preprocessor(self) -> Preprocessor:
        """A new preprocessor for this model, for one thread that prepares frames (each
        into a tensor of its own)."""
        return Preprocessor(self._spec.manifest.input, fresh=True)

    def prepare(self, frame: Frame, preprocessor: Preprocessor) -> PreparedFrame:
        """Preprocess a frame outside the detector's lock with the caller's own preprocessor
        (one per thread; `preprocessor()` makes one whose tensors need no copy), so that a
        batch run overlaps preprocessing with inference.
        BadInputError as `detect` raises it."""
        t0 = time.perf_counter()
        if self._spec.manifest.input.representation == "dual_energy":
            if frame.high is None or frame.low is None:
                raise BadInputError(
                    f"frame: model {self.model_id} needs dual-energy high and low channels"
                )
            tensor, info = preprocessor.from_planes((frame.high, frame.low))
        else:
            rgb = frame.rgb
            if rgb is None:
                assert frame.high is not None  # Frame guarantees channels or RGB
                rgb = render_pseudocolor(frame.high, frame.low)
            tensor, info = preprocessor.from_rgb(rgb)
        ms = (time.perf_counter() - t0) * 1e3
        owned = tensor if preprocessor.fresh else tensor.copy()
        return PreparedFrame(owned, info, frame.shape, ms)

    def detect_prepared(self, prepared: PreparedFrame) -> DetectionRun:
        """Detections of a prepared frame; its timings count the preparation."""
        return self._run(
            lambda: (prepared.tensor, prepared.info), prepared.frame_hw, prepared.preprocess_ms
        )

    def detect_rgb(self, rgb: npt.NDArray[np.uint8]) -> DetectionRun:
        """Detections for an (H, W, 3) uint8 RGB pseudo-colour image, boxes in its pixels."""
        return self._run(lambda: self._preprocessor.from_rgb(rgb), rgb.shape[:2])

    def _run(
        self,
        preprocess: Callable[[], tuple[npt.NDArray[np.float32], LetterboxInfo]],
        frame_hw: tuple[int, ...],
        earlier_preprocess_ms: float = 0.0,
    ) -> DetectionRun:
        with self._lock:
            t0 = time.perf_counter()
            tensor, info = preprocess()
            t1 = time.perf_counter()
            outputs = self._infer(tensor)
            t2 = time.perf_counter()
            found = self._decode(outputs, self._params)
            boxes = unletterbox_boxes(found.boxes, info, frame_hw[1], frame_hw[0])
            detections = Detections(boxes, found.scores, found.class_ids)
            t3 = time.perf_counter()
        return DetectionRun(
            detections,
            {
                "preprocess": earlier_preprocess_ms + (t1 - t0) * 1e3,
                "inference": (t2 - t1) * 1e3,
                "postprocess": (t3 - t2) * 1e3,
            },
        )

    def _infer(self, tensor: npt.NDArray[np.float32]) -> list[npt.NDArray[np.generic]]:
        try:
            outputs = self._session.run(
                list(self._binding.output_names), {self._binding.input_name: tensor}
            )
        except Exception as exc:  # onnxruntime raises its own unexported exception types
            raise DetectorError(f"inference failed in model {self.model_id}: {exc}") from exc
        return [np.asarray(o) for o in outputs]

    def _warm_up(self) -> None:
        """One inference on an all-padding input, decoded, so shape errors surface at load."""
        with self._lock:
            self._decode(self._infer(self._preprocessor.tensor), self._params)
