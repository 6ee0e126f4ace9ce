"""The detector in a child process: deadlines, crashes and restarts with real processes."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import onnx_model
from onnx import TensorProto, helper, numpy_helper

from edge.detector.isolated import IsolatedDetector
from edge.errors import DetectorError
from edge.frames import Frame, ScreeningState

MakeDir = Callable[..., Path]


def hang_on_black_model() -> object:
    """yolov8 output with one knife box; an all-black input makes an ONNX Loop spin ~forever.

    Trip count = relu(0.1 - max(input)) * 1e13: zero for any normal or padded frame, 10^12
    iterations for a black one. A real graph hanging in onnxruntime, no test hooks.
    """
    raw = np.zeros((1, 8, 4), np.float32)
    raw[0, :4, 0] = [32, 32, 16, 16]
    raw[0, 4 + 1, 0] = 0.9
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Identity", ["v_in"], ["v_out"]),
        ],
        "spin",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, []),
        ],
    )
    nodes = [
        helper.make_node("ReduceMax", ["images"], ["peak"], keepdims=0),
        helper.make_node("Sub", ["tenth", "peak"], ["gap"]),
        helper.make_node("Relu", ["gap"], ["gap_pos"]),
        helper.make_node("Mul", ["gap_pos", "huge"], ["trips_f"]),
        helper.make_node("Cast", ["trips_f"], ["trips"], to=TensorProto.INT64),
        helper.make_node("Loop", ["trips", "true", "zero"], ["spun"], body=body),
        helper.make_node("Mul", ["spun", "zero"], ["nothing"]),
        helper.make_node("Add", ["raw", "nothing"], ["output0"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "tenth"),
        numpy_helper.from_array(np.array(1e13, np.float32), "huge"),
        numpy_helper.from_array(np.array(True), "true"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(raw, "raw"),
    ]
    graph = helper.make_graph(
        nodes,
        "hang_on_black",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 8, 4])],
        inits,
    )
    return onnx_model(graph)


def grey_frame() -> Frame:
    return Frame(rgb=np.full((48, 80, 3), 200, np.uint8))


def black_frame() -> Frame:
    # Square, so the letterbox adds no grey padding that would lift the maximum.
    return Frame(rgb=np.zeros((64, 64, 3), np.uint8))


@pytest.fixture
def worker(tiny_model_dir: MakeDir) -> IsolatedDetector:
    detector = IsolatedDetector(tiny_model_dir(model=hang_on_black_model()), deadline_s=3.0)
    detector.start()
    yield detector  # type: ignore[misc]
    detector.close()


def test_screens_in_the_child(worker: IsolatedDetector) -> None:
    result = worker.screen(grey_frame())
    assert result.state is ScreeningState.SCREENED and result.alarm is True
    assert result.model == "tiny@0.1.0"
    assert worker.status.pid != os.getpid()


def test_a_hang_costs_one_frame_and_a_restart(worker: IsolatedDetector) -> None:
    first_pid = worker.status.pid
    started = time.monotonic()
    hung = worker.screen(black_frame())
    assert hung.state is ScreeningState.NOT_SCREENED and hung.alarm is None
    assert "deadline" in (hung.reason or "")
    assert time.monotonic() - started >= 3.0
    after = worker.screen(grey_frame())
    assert after.state is ScreeningState.SCREENED and after.alarm is True
    assert worker.status.restarts == 1 and worker.status.pid != first_pid


def test_a_crash_costs_one_frame_and_a_restart(worker: IsolatedDetector) -> None:
    worker.deadline_s = 60.0
    pid = worker.status.pid
    assert pid is not None
    killer = threading.Timer(1.0, os.kill, (pid, signal.SIGKILL))
    killer.start()
    crashed = worker.screen(black_frame())  # spins until killed, like an OOM kill
    killer.join()
    assert crashed.state is ScreeningState.NOT_SCREENED
    assert "died" in (crashed.reason or "") and "-9" in (crashed.reason or "")
    assert worker.screen(grey_frame()).state is ScreeningState.SCREENED


def test_a_refused_model_is_reported_and_never_clears(tiny_model_dir: MakeDir) -> None:
    broken = tiny_model_dir(edit=lambda m: m.pop("output"))
    detector = IsolatedDetector(broken)
    with pytest.raises(DetectorError, match="output"):
        detector.start()
    result = detector.screen(grey_frame())
    assert result.state is ScreeningState.NOT_SCREENED and result.alarm is None
    assert "output" in (result.reason or "")
    detector.close()
