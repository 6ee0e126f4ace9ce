"""Helpers of the served-upgrade acceptance test (test_serve_acceptance.py): an INT8 candidate
quantized from the shipped demo model, a small regression suite the gate runs in seconds, a
scanner emulator that stops on demand yet waits for every answer, and `edge serve` and
`edge ...` CLI calls as real processes.

Why static QDQ and only the Conv layers: dynamic quantization keeps the detections almost
exact but runs Conv as ConvInteger, several times slower than FP32 on this CPU; static QDQ
of every op quantizes the head's final Concat of box coordinates (0-512 px) and class
scores (0-1) with one scale, which wipes out the scores. Quantizing the Conv layers alone
(per tensor, calibrated on 8 simulated bags) keeps the head in FP32: the alarms stay close
to the FP32 model's, as the gate requires (39 of 40 held-out bags alarm the same; per-channel
weights did worse here, 17 of 22 against 21 of 22).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from edge.config import DEFAULT_MODEL_DIR
from edge.detector import Detector
from edge.pseudocolor import render_pseudocolor
from edge.sim.scanner import EmulatorReport
from edge.sim.scene import simulate_bag

REPO = Path(__file__).resolve().parents[2]
COMPATIBLE = "xray-dual-energy-v1"
CALIBRATION_SEED = 9_500_000  # apart from training, evaluation and the standard suite's seeds

# The device's gate for a suite of a few dozen bags. With 3 bags a class, per-class Pd bars
# would be noise (the demo model finds 0 of 3 bottles there), so the absolute bar is the
# whole suite's mAP@0.5 (the demo model: about 0.35; a model detecting nothing: 0), beside
# non-regression against the active model per class. Behaviour: the cheap repeat check.
SMALL_SUITE_POLICY = """\
version = 1
[slices]
report = ["clutter"]
gate = ["class"]
min_samples = 2
[absolute]
pfa_max = 0.5
map50_min = 0.15
[non_regression]
required = true
delta = 0.05
rule = "significant_drop"
[behaviour]
repeat_frames = 2
flip_frames = 0
projection_per_class = 0
"""


# ----------------------------------------------------------------------------- models


def calibration_tensors(count: int, seed: int = CALIBRATION_SEED) -> list[np.ndarray]:
    """The demo model's input tensors for `count` simulated bags."""
    preprocessor = Detector.load(DEFAULT_MODEL_DIR).preprocessor()
    tensors = []
    for i in range(count):
        bag = simulate_bag(seed + i)
        tensor, _ = preprocessor.from_rgb(render_pseudocolor(bag.high, bag.low))
        tensors.append(tensor.copy())
    return tensors


def write_model_dir(out: Path, onnx_bytes: bytes, version: str, note: str) -> Path:
    """A model directory: the demo model's manifest (same classes, input, thresholds) with
    a new version, the new graph's own SHA-256, and a note on how it was made."""
    manifest = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    manifest["version"] = version
    manifest["sha256"] = {"model.onnx": hashlib.sha256(onnx_bytes).hexdigest()}
    manifest["derived"] = note
    manifest.pop("training", None)
    out.mkdir(parents=True)
    (out / "model.onnx").write_bytes(onnx_bytes)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


def quantize_demo(out: Path, version: str, frames: int = 8) -> Path:
    """The demo model with its Conv layers quantized to INT8 (static QDQ, per tensor,
    calibrated on `frames` simulated bags): a model directory at `out`."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    input_name = Detector.load(DEFAULT_MODEL_DIR).input_name
    tensors = calibration_tensors(frames)

    class Frames(CalibrationDataReader):  # type: ignore[misc]  # untyped base
        def __init__(self) -> None:
            self._left = iter(tensors)

        def get_next(self) -> dict[str, np.ndarray] | None:
            tensor = next(self._left, None)
            return None if tensor is None else {input_name: tensor}

    work = out.parent / f"{out.name}.onnx"
    quantize_static(
        str(DEFAULT_MODEL_DIR / "model.onnx"),
        str(work),
        Frames(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["Conv"],
        per_channel=False,
    )
    data = work.read_bytes()
    work.unlink()
    note = f"INT8 static QDQ (Conv only) of demo-xray-det@1.0.0, {frames} calibration bags"
    return write_model_dir(out, data, version, note)


def blind_model(out: Path, version: str) -> Path:
    """A degraded candidate: the demo model's interface (512 x 512 in, yolov8 out with its
    5 classes) whose graph answers every frame with all-zero scores: it detects nothing."""
    from onnx import TensorProto, helper, numpy_helper

    boxes = 5376  # the demo model's anchor count for a 512 x 512 input
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["table", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "blind",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 512, 512])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 9, boxes])],
        [
            numpy_helper.from_array(np.zeros((), np.float32), "zero"),
            numpy_helper.from_array(np.zeros((1, 9, boxes), np.float32), "table"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return write_model_dir(out, model.SerializeToString(), version, "detects nothing")


def per_frame_ms(model_dir: Path, tensors: list[np.ndarray], rounds: int = 2) -> float:
    """Median onnxruntime time per frame, ms (after one warm-up run)."""
    detector = Detector.load(model_dir)
    session, name = detector.session, detector.input_name
    session.run(None, {name: tensors[0]})
    times = []
    for _ in range(rounds):
        for tensor in tensors:
            t0 = time.perf_counter()
            session.run(None, {name: tensor})
            times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


# ----------------------------------------------------------------------------- suite


def write_small_suite(root: Path, count: int, seed: int) -> Path:
    """A standard-layout suite of `count` simulated bags (half clean) under
    SMALL_SUITE_POLICY, built as `edge simulate suite` builds one."""
    from edge.sim.suite import write_standard_dataset
    from edge.validation.suite_build import DatasetEntry, write_manifest, write_policy
    from edge.validation.suite_cmd import SIM_DATASET

    dataset = write_standard_dataset(root / SIM_DATASET, count, seed)
    write_policy(root, SMALL_SUITE_POLICY)
    known = {f"{SIM_DATASET}/{rel}": sha for rel, sha in dataset.files.items()}
    entry = DatasetEntry(SIM_DATASET, None, {"kind": "simulated", "seed": seed})
    write_manifest(root, name="small", label_version=1, datasets=[entry], known_hashes=known)
    return root


# ----------------------------------------------------------------------------- processes


def edge(
    *args: str, timeout: float = 300, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `edge` CLI as its own process."""
    env = {k: v for k, v in os.environ.items() if k not in ("EDGE_MODEL", "EDGE_DATA")}
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, client: httpx.Client, path: str, **params: Any) -> Any:
        assert self.process.poll() is None, f"service exited early:\n{self.logs()}"
        response = client.get(path, params=params)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        return response.json()


@contextmanager
def serve(data: Path, config: Path, log: Path) -> Iterator[Served]:
    """`edge serve` on a free port; killed on exit if it is still running."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("EDGE_MODEL", "EDGE_DATA")}
    command = [sys.executable, "-m", "edge.cli", "serve", "--no-demo", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--data", str(data), "--config", str(config)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Served(process, f"http://127.0.0.1:{port}", log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def wait_for(
    what: str, ready: Callable[[], Any], timeout: float, served: Served, poll_s: float = 0.2
) -> Any:
    """Call `ready()` until it returns something truthy; fails naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        assert served.process.poll() is None, f"service exited early:\n{served.logs()}"
        try:
            value = ready()
        except httpx.TransportError:
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not in {timeout} s:\n{served.logs()[-4000:]}"
        time.sleep(poll_s)


# ----------------------------------------------------------------------------- scanner


def frame_order(report: EmulatorReport) -> list[str]:
    """The scanner's frame ids in the order they were sent."""
    return sorted(report.stored_ids, key=lambda frame: int(frame.rsplit("-", 1)[1]))
