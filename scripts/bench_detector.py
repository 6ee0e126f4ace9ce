"""Detector overhead benchmark: the whole detect pipeline against bare session.run.

Builds a YOLOv8n-shaped graph (640x640 input, strides 8/16/32, output (1, 84, 8400), random
weights with a fixed seed) and, when present, the demo model; for each it times
detect (preprocess + inference + decode + NMS) and session.run on the already
preprocessed tensor, alternating the two, on the same 1000x800 frame (its RGB rendering
for pseudo-colour models, its high/low planes for dual-energy ones).

    .venv/bin/python scripts/bench_detector.py [--model DIR] [--runs N] [--threads N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.detector import Detector  # noqa: E402
from edge.detector.preprocess import Preprocessor  # noqa: E402
from edge.frames import Frame  # noqa: E402
from edge.pseudocolor import render_pseudocolor  # noqa: E402

FRAME_W, FRAME_H = 1000, 800
INPUT = 640
NUM_CLASSES = 80
# Class logits sit far below zero, as a trained model's do on almost every anchor, so that
# only a few candidates pass 0.25 and NMS does realistic work rather than 8400 x 80.
CLASS_BIAS = -6.0
CLASS_GAIN = 4.5  # with the bias: ~170 of 8400 anchors pass on the simulated bag


class GraphBuilder:
    """Accumulates nodes and initialisers for a conv net with random He-initialised weights."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, value: np.ndarray, prefix: str = "c") -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: object) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv(
        self,
        x: str,
        c_in: int,
        c_out: int,
        k: int = 3,
        stride: int = 1,
        *,
        act: bool = True,
        gain: float = 1.0,
        bias: float = 0.0,
    ) -> str:
        std = gain * np.sqrt(2.0 / (c_in * k * k))
        w = self.const((self.rng.standard_normal((c_out, c_in, k, k)) * std).astype(np.float32))
        b = self.const(np.full(c_out, bias, np.float32))
        y = self.node(
            "Conv", [x, w, b], kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4
        )
        return self.node("Mul", [y, self.node("Sigmoid", [y])]) if act else y  # SiLU


def yolov8n_like(seed: int = 0) -> onnx.ModelProto:
    """(1, 3, 640, 640) -> (1, 84, 8400): cx, cy, w, h in input pixels, 80 sigmoid scores."""
    g = GraphBuilder(seed)
    x = g.conv("images", 3, 16, stride=2)  # 320
    x = g.conv(x, 16, 32, stride=2)  # 160
    x = g.conv(x, 32, 32)
    levels = []
    for c_in, c_out in [(32, 64), (64, 128), (128, 256)]:  # strides 8, 16, 32
        x = g.conv(x, c_in, c_out, stride=2)
        x = g.conv(x, c_out, c_out)
        x = g.conv(x, c_out, c_out)
        levels.append((x, c_out))
    boxes, scores = [], []
    for (feature, c), stride in zip(levels, (8, 16, 32), strict=True):
        side = INPUT // stride
        b = g.node("Sigmoid", [g.conv(g.conv(feature, c, 64), 64, 4, k=1, act=False)])
        # Boxes as a detection head draws them: centre within a cell of the anchor grid,
        # size 1-5 strides; the sigmoid keeps every box valid.
        ys, xs = np.mgrid[0:side, 0:side].astype(np.float32)
        grid = np.stack([xs, ys, np.ones_like(xs), np.ones_like(xs)])[None] * stride
        scale = np.array([stride, stride, 4 * stride, 4 * stride], np.float32).reshape(1, 4, 1, 1)
        b = g.node("Add", [g.node("Mul", [b, g.const(scale)]), g.const(grid)])
        s = g.conv(
            g.conv(feature, c, 80),
            80,
            NUM_CLASSES,
            k=1,
            act=False,
            gain=CLASS_GAIN,
            bias=CLASS_BIAS,
        )
        s = g.node("Sigmoid", [s])
        boxes.append(g.node("Reshape", [b, g.const(np.array([1, 4, -1], np.int64))]))
        scores.append(g.node("Reshape", [s, g.const(np.array([1, NUM_CLASSES, -1], np.int64))]))
    box_all = g.node("Concat", boxes, axis=2)
    score_all = g.node("Concat", scores, axis=2)
    g.nodes.append(helper.make_node("Concat", [box_all, score_all], ["output0"], axis=1))
    graph = helper.make_graph(
        g.nodes,
        "yolov8n-like",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, INPUT, INPUT])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + NUM_CLASSES, 8400])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def write_model_dir(directory: Path, model: onnx.ModelProto) -> Path:
    data = model.SerializeToString()
    (directory / "model.onnx").write_bytes(data)
    manifest = {
        "name": "yolov8n-like",
        "version": "0.0.0",
        "classes": [f"class{i}" for i in range(NUM_CLASSES)],
        "input": {
            "width": INPUT,
            "height": INPUT,
            "representation": "pseudocolor",
            "layout": "NCHW",
            "scale": 1 / 255,
            "mean": None,
            "std": None,
        },
        "output": {"format": "yolov8", "nms_iou": 0.7},
        "thresholds": {"default": 0.25},
        "sha256": {"model.onnx": hashlib.sha256(data).hexdigest()},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def bench_frame() -> tuple[Frame, str]:
    """A 1000x800 frame with dual-energy planes and their pseudo-colour rendering: a
    simulated bag when the simulator is there, else noise."""
    size = (FRAME_W, FRAME_H)
    try:
        from edge.sim.scene import simulate_bag

        sim = simulate_bag(7, threat_ratio=1.0)
        high, low = (cv2.resize(p, size, interpolation=cv2.INTER_AREA) for p in (sim.high, sim.low))
        source = "sim bag"
    except Exception as exc:  # the simulator is optional here; say why it was not used
        print(f"(simulated bag unavailable: {exc!r}; using noise)", file=sys.stderr)
        rng = np.random.default_rng(0)
        high = rng.integers(20000, 60000, (FRAME_H, FRAME_W), np.uint16)
        low = (high * rng.uniform(0.5, 0.95, high.shape)).astype(np.uint16)
        source = "noise"
    return Frame(high=high, low=low, rgb=render_pseudocolor(high, low)), source


@dataclass
class Row:
    model: str
    input: str
    pipeline_ms: float
    session_ms: float
    detections: int
    stages_ms: dict[str, float]

    @property
    def ratio(self) -> float:
        return self.pipeline_ms / self.session_ms


def measure(detector: Detector, frame: Frame, runs: int, warmup: int) -> Row:
    """Median ms of detect and of bare session.run on its preprocessed tensor, alternated.

    Pseudo-colour models read the frame's rendered RGB, so rendering is not timed.
    """
    spec = detector.spec.manifest.input
    preprocessor = Preprocessor(spec)
    if spec.representation == "dual_energy":
        assert frame.high is not None and frame.low is not None
        tensor = preprocessor.from_planes((frame.high, frame.low))[0].copy()
    else:
        assert frame.rgb is not None
        tensor = preprocessor.from_rgb(frame.rgb)[0].copy()
    session, feed = detector.session, {detector.input_name: tensor}
    pipeline, bare = [], []
    stages: dict[str, list[float]] = {"preprocess": [], "inference": [], "postprocess": []}
    found = 0
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        run = detector.detect(frame)
        t1 = time.perf_counter()
        session.run(None, feed)
        t2 = time.perf_counter()
        if i >= warmup:
            pipeline.append((t1 - t0) * 1e3)
            bare.append((t2 - t1) * 1e3)
            for key, values in stages.items():
                values.append(run.timings_ms[key])
            found = len(run.detections)
    height, width = frame.shape
    return Row(
        detector.model_id,
        f"{width}x{height} {spec.representation} -> {spec.width}x{spec.height}",
        statistics.median(pipeline),
        statistics.median(bare),
        found,
        {k: statistics.median(v) for k, v in stages.items()},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "demo-xray-det")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    args = parser.parse_args(argv)

    frame, source = bench_frame()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = write_model_dir(Path(tmp), yolov8n_like())
        dirs = [synthetic] + ([args.model] if (args.model / "manifest.json").exists() else [])
        for model_dir in dirs:
            detector = Detector.load(model_dir, intra_op_threads=args.threads)
            rows.append(measure(detector, frame, args.runs, args.warmup))

    print(f"frame: {source}, {args.runs} runs each after {args.warmup} warm-up, alternated\n")
    print("| model | input | median pipeline ms | median session.run ms | ratio | target |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.model} | {r.input} | {r.pipeline_ms:.2f} | {r.session_ms:.2f} | "
            f"{r.ratio:.3f} | <= 1.10 |"
        )
    print()
    for r in rows:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r.stages_ms.items())
        print(f"{r.model}: median stages ms: {stages}; detections: {r.detections}")
    return 0 if all(r.ratio <= 1.10 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
