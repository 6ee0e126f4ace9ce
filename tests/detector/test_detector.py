from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from conftest import gather_failure_model
from onnx import TensorProto, helper, numpy_helper

from edge.detector import Detector
from edge.detector.preprocess import letterbox
from edge.errors import BadInputError, DetectorError, ManifestError
from edge.frames import AIR_LEVEL, Frame
from edge.pseudocolor import render_pseudocolor

MakeDir = Callable[..., Path]
CLASSES = 4
FRAME_BOX = [100.0, 150.0, 620.5, 480.25]  # x1 y1 x2 y2, frame pixels


def ultralytics_letterboxed(box: list[float], frame_w: int, frame_h: int, size: int) -> list[float]:
    """Where a frame box lands in a size x size letterboxed input, by ultralytics' formulas."""
    r = min(size / frame_h, size / frame_w)
    new_w, new_h = round(frame_w * r), round(frame_h * r)
    left = round((size - new_w) / 2 - 0.1)
    top = round((size - new_h) / 2 - 0.1)
    x1, y1, x2, y2 = box
    return [x1 * r + left, y1 * r + top, x2 * r + left, y2 * r + top]


def raw_outputs(fmt: str, boxes: list[list[float]], scores: list[float]) -> list[np.ndarray]:
    """Raw graph outputs in `fmt` holding xyxy boxes of class 1 with the given scores."""
    xyxy = np.array(boxes, np.float32).reshape(-1, 4)
    xywh = np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    n = len(scores)
    class_scores = np.zeros((n, CLASSES), np.float32)
    class_scores[:, 1] = scores
    labels = np.ones(n, np.float32)
    if fmt == "yolov8":
        return [np.concatenate([xywh, class_scores], axis=1).T[None]]
    if fmt == "yolov5":
        objectness = np.ones((n, 1), np.float32)
        return [np.concatenate([xywh, objectness, class_scores], axis=1)[None]]
    if fmt == "end2end":
        return [np.concatenate([xyxy, np.array(scores)[:, None], labels[:, None]], axis=1)[None]]
    assert fmt == "end2end3"
    return [xyxy[None], np.array(scores, np.float32)[None], labels.astype(np.int64)[None]]


def set_input(width: int, height: int, fmt: str) -> Callable[[dict[str, Any]], None]:
    def edit(manifest: dict[str, Any]) -> None:
        manifest["input"].update(width=width, height=height)
        manifest["output"]["format"] = "end2end" if fmt.startswith("end2end") else fmt

    return edit


@pytest.mark.parametrize("fmt", ["yolov8", "yolov5", "end2end", "end2end3"])
@pytest.mark.parametrize(
    ("frame_w", "frame_h", "size"),
    [(1000, 700, 512), (1000, 700, 640), (700, 1000, 640), (1001, 701, 640)],
)
def test_known_box_maps_back_to_frame_pixels(
    tiny_model_dir: MakeDir, fmt: str, frame_w: int, frame_h: int, size: int
) -> None:
    inside = ultralytics_letterboxed(FRAME_BOX, frame_w, frame_h, size)
    beyond = [-5.0, -5.0, size + 5.0, size + 5.0]  # spills over padding and edges
    outputs = raw_outputs(fmt, [inside, beyond, inside], [0.9, 0.6, 0.1])
    model_dir = tiny_model_dir(outputs, edit=set_input(size, size, fmt))
    detector = Detector.load(model_dir)

    rgb = np.zeros((frame_h, frame_w, 3), np.uint8)
    run = detector.detect(Frame(rgb=rgb))

    assert run.detections.class_ids.tolist() == [1, 1]
    np.testing.assert_allclose(run.detections.scores, [0.9, 0.6], rtol=1e-6)
    np.testing.assert_allclose(run.detections.boxes[0], FRAME_BOX, atol=0.01)
    np.testing.assert_allclose(run.detections.boxes[1], [0, 0, frame_w, frame_h], atol=1e-3)
    assert set(run.timings_ms) == {"preprocess", "inference", "postprocess"}
    assert all(t >= 0 for t in run.timings_ms.values())


def test_identity(tiny_model_dir: MakeDir) -> None:
    model_dir = tiny_model_dir()
    detector = Detector.load(model_dir, intra_op_threads=1)
    assert detector.model_id == "tiny@0.1.0"
    digest = hashlib.sha256((model_dir / "model.onnx").read_bytes()).hexdigest()
    assert detector.model_sha256 == digest
    assert detector.class_names == ["gun", "knife", "blade", "scissors"]
    assert detector.spec.directory == model_dir
    assert len(detector.detect_rgb(np.zeros((30, 40, 3), np.uint8)).detections) == 0


def mean_score_model(channels: int, size: int) -> onnx.GraphProto:
    """yolov8 output (1, 8, 1): a fixed box whose class-0 score is the input tensor's mean."""
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean", "shape"], ["score"]),
        helper.make_node("Concat", ["box", "score", "rest"], ["output0"], axis=1),
    ]
    inits = [
        numpy_helper.from_array(np.array([1, 1, 1], np.int64), "shape"),
        numpy_helper.from_array(np.array([[[8], [8], [4], [4]]], np.float32), "box"),
        numpy_helper.from_array(np.zeros((1, 3, 1), np.float32), "rest"),
    ]
    return helper.make_graph(
        nodes,
        "mean-score",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 8, 1])],
        inits,
    )


def dual_energy_frame(seed: int = 0) -> Frame:
    rng = np.random.default_rng(seed)
    high = rng.integers(20000, 60000, (50, 70), np.uint16)
    low = (high * rng.uniform(0.5, 0.9, high.shape)).astype(np.uint16)
    return Frame(high=high, low=low)


def zero_threshold(representation: str) -> Callable[[dict[str, Any]], None]:
    def edit(manifest: dict[str, Any]) -> None:
        manifest["thresholds"]["default"] = 0.0
        manifest["input"]["representation"] = representation
        if representation == "dual_energy":
            manifest["input"]["scale"] = None

    return edit


def test_pseudocolor_model_renders_frames_without_rgb(tiny_model_dir: MakeDir) -> None:
    model_dir = tiny_model_dir(model=mean_score_model(3, 64), edit=zero_threshold("pseudocolor"))
    detector = Detector.load(model_dir)
    frame = dual_energy_frame()
    rendered = render_pseudocolor(frame.high, frame.low)
    expected = letterbox(rendered, 64, 64, 114)[0].astype(np.float64).mean() / 255
    assert detector.detect(frame).detections.scores[0] == pytest.approx(expected, rel=1e-5)

    rgb = np.full((50, 70, 3), 200, np.uint8)
    with_rgb = Frame(high=frame.high, low=frame.low, rgb=rgb)
    expected_rgb = letterbox(rgb, 64, 64, 114)[0].astype(np.float64).mean() / 255
    assert detector.detect(with_rgb).detections.scores[0] == pytest.approx(expected_rgb, rel=1e-5)


def test_dual_energy_model_takes_high_and_low(tiny_model_dir: MakeDir) -> None:
    model_dir = tiny_model_dir(model=mean_score_model(2, 64), edit=zero_threshold("dual_energy"))
    detector = Detector.load(model_dir)
    frame = dual_energy_frame()
    planes = [letterbox(p, 64, 64, AIR_LEVEL)[0] for p in (frame.high, frame.low)]
    expected = np.mean([p.astype(np.float64).mean() for p in planes]) / 65535
    assert detector.detect(frame).detections.scores[0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (Frame(rgb=np.zeros((10, 10, 3), np.uint8)), "got an RGB-only frame"),
        (Frame(high=np.zeros((10, 10), np.uint16)), "got a single-energy frame"),
    ],
)
def test_dual_energy_model_refuses_frames_without_both_channels(
    tiny_model_dir: MakeDir, frame: Frame, message: str
) -> None:
    model_dir = tiny_model_dir(model=mean_score_model(2, 64), edit=zero_threshold("dual_energy"))
    with pytest.raises(BadInputError, match=message):
        Detector.load(model_dir).detect(frame)


def test_pseudocolor_model_refuses_non_rgb_arrays(tiny_model_dir: MakeDir) -> None:
    detector = Detector.load(tiny_model_dir())
    with pytest.raises(BadInputError, match=r"expected \(H, W, 3\) uint8 RGB"):
        detector.detect_rgb(np.zeros((10, 10), np.uint8))


def test_concurrent_callers_get_their_own_results(tiny_model_dir: MakeDir) -> None:
    model_dir = tiny_model_dir(model=mean_score_model(3, 64), edit=zero_threshold("pseudocolor"))
    detector = Detector.load(model_dir)
    images = {v: np.full((40 + v // 10, 60, 3), v, np.uint8) for v in (30, 220)}
    expected = {
        v: letterbox(img, 64, 64, 114)[0].astype(np.float64).mean() / 255
        for v, img in images.items()
    }
    errors: list[str] = []

    def worker(v: int) -> None:
        for _ in range(30):
            score = float(detector.detect_rgb(images[v]).detections.scores[0])
            if abs(score - expected[v]) > 1e-4:
                errors.append(f"{v}: {score} != {expected[v]}")

    threads = [threading.Thread(target=worker, args=(v,)) for v in images]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_inference_failure_is_a_detector_error(tiny_model_dir: MakeDir) -> None:
    detector = Detector.load(tiny_model_dir(model=gather_failure_model(2.0)))
    assert len(detector.detect_rgb(np.zeros((20, 20, 3), np.uint8)).detections) == 0
    with pytest.raises(DetectorError, match="inference failed in model tiny@0.1.0: .*Gather"):
        detector.detect_rgb(np.full((20, 20, 3), 255, np.uint8))


def test_warm_up_failure_refuses_the_model(tiny_model_dir: MakeDir) -> None:
    with pytest.raises(ManifestError, match="model.onnx: warm-up inference failed"):
        Detector.load(tiny_model_dir(model=gather_failure_model(3.0)))


def test_graph_class_count_mismatch_refuses_the_model(tiny_model_dir: MakeDir) -> None:
    outputs = [np.zeros((1, 4 + 5, 16), np.float32)]
    with pytest.raises(ManifestError) as info:
        Detector.load(tiny_model_dir(outputs))
    assert info.value.message == (
        "class count 4 in manifest does not match graph output (1, 9, 16): expects 5 classes"
    )
