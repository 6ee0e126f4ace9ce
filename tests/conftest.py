"""Shared fixtures: `tiny_model_dir` writes a real ONNX detector model directory,
`tiny_manifest` is its manifest."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

TINY_MANIFEST: dict[str, Any] = {
    "name": "tiny",
    "version": "0.1.0",
    "classes": ["gun", "knife", "blade", "scissors"],
    "input": {
        "width": 64,
        "height": 64,
        "representation": "pseudocolor",
        "layout": "NCHW",
        "scale": 1 / 255,
        "mean": None,
        "std": None,
        "letterbox": True,
        "pad_value": 114,
    },
    "output": {"format": "yolov8", "nms_iou": 0.5},
    "thresholds": {"default": 0.25},
}


def constant_outputs_model(
    outputs: Sequence[np.ndarray],
    input_shape: Sequence[int | str] = (1, 3, 64, 64),
    names: Sequence[str] | None = None,
) -> onnx.ModelProto:
    """A graph whose outputs are the given arrays, plus 0 * mean(input) so the input is used."""
    names = list(names or [f"output{i}" for i in range(len(outputs))])
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
    ]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    graph_outputs = []
    for name, value in zip(names, outputs, strict=True):
        value = np.asarray(value)
        elem = helper.np_dtype_to_tensor_dtype(value.dtype)
        inits.append(numpy_helper.from_array(value, f"{name}_value"))
        nodes.append(helper.make_node("Cast", ["nothing"], [f"{name}_nothing"], to=elem))
        nodes.append(helper.make_node("Add", [f"{name}_value", f"{name}_nothing"], [name]))
        graph_outputs.append(helper.make_tensor_value_info(name, elem, list(value.shape)))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(input_shape))],
        graph_outputs,
        inits,
    )
    return onnx_model(graph)


def onnx_model(graph: onnx.GraphProto) -> onnx.ModelProto:
    """A checked model at opset 17 and an IR version every onnxruntime here reads."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def gather_failure_model(factor: float) -> onnx.GraphProto:
    """yolov8 (1, 8, 4) zeros read from row k = floor(max(input) * factor) of a 1-row table:
    any k but 0 is out of bounds at run time.

    Inputs are in [0, 1] (pad value 114/255 = 0.447), so factor 2 runs on padding and fails
    on white; factor 3 fails already on padding.
    """
    nodes = [
        helper.make_node("ReduceMax", ["images"], ["max"], keepdims=0),
        helper.make_node("Mul", ["max", "factor"], ["scaled"]),
        helper.make_node("Floor", ["scaled"], ["floored"]),
        helper.make_node("Cast", ["floored"], ["row"], to=TensorProto.INT64),
        helper.make_node("Gather", ["table", "row"], ["values"], axis=0),
        helper.make_node("Reshape", ["values", "shape"], ["output0"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(factor, np.float32), "factor"),
        numpy_helper.from_array(np.zeros((1, 32), np.float32), "table"),
        numpy_helper.from_array(np.array([1, 8, 4], np.int64), "shape"),
    ]
    return helper.make_graph(
        nodes,
        "gather-failure",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 8, 4])],
        inits,
    )


@pytest.fixture
def tiny_manifest() -> dict[str, Any]:
    """A fresh copy of the valid manifest `tiny_model_dir` writes (without its sha256)."""
    return copy.deepcopy(TINY_MANIFEST)


@pytest.fixture
def tiny_model_dir(tmp_path: Path) -> Callable[..., Path]:
    """Factory: write model.onnx and a valid manifest.json (sha256 filled in); returns the dir.

    `outputs`: arrays for a constant-output graph (default: an empty yolov8 output), or
    `model`: any GraphProto or ModelProto; `edit(manifest)` mutates TINY_MANIFEST's copy
    before writing.
    """
    counter = iter(range(1000))

    def make(
        outputs: Sequence[np.ndarray] | None = None,
        *,
        model: onnx.GraphProto | onnx.ModelProto | None = None,
        edit: Callable[[dict[str, Any]], None] | None = None,
    ) -> Path:
        manifest = copy.deepcopy(TINY_MANIFEST)
        if edit is not None:
            edit(manifest)
        if model is None:
            if outputs is None:
                outputs = [np.zeros((1, 4 + len(manifest["classes"]), 16), np.float32)]
            spec = manifest["input"]
            channels = 3 if spec["representation"] == "pseudocolor" else 2
            model = constant_outputs_model(outputs, (1, channels, spec["height"], spec["width"]))
        if isinstance(model, onnx.GraphProto):
            model = onnx_model(model)
        directory = tmp_path / f"model{next(counter)}"
        directory.mkdir()
        data = model.SerializeToString()
        (directory / "model.onnx").write_bytes(data)
        manifest.setdefault("sha256", {"model.onnx": hashlib.sha256(data).hexdigest()})
        (directory / "manifest.json").write_text(json.dumps(manifest))
        return directory

    return make
