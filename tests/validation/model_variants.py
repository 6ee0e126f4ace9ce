"""Copies of the demo model with their class-score head edited (onnx numpy_helper), for
tests that need a model that is worse, or only slightly different."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

DEMO = Path(__file__).resolve().parents[2] / "models" / "demo-xray-det"
# The demo graph scores classes with a 1x1 convolution per stride (8, 16, 32): weight
# (5, C, 1, 1) and bias (5,), one row per class, then a sigmoid (see model.onnx).
CLASS_HEADS = [f"model.heads.{i}.cls" for i in range(3)]
Head = dict[str, np.ndarray]  # "model.heads.0.cls.weight" -> array


def write_variant(
    dst: Path, version: str, change: Callable[[Head], None], src: Path = DEMO
) -> Path:
    """`src` with its class heads edited by `change` (in place), as model directory `dst`
    with its own version and SHA-256."""
    model = onnx.load(str(src / "model.onnx"))
    initializers = {init.name: init for init in model.graph.initializer}
    names = [f"{head}.{part}" for head in CLASS_HEADS for part in ("weight", "bias")]
    arrays = {name: numpy_helper.to_array(initializers[name]).copy() for name in names}
    change(arrays)
    for name, array in arrays.items():
        initializers[name].CopyFrom(numpy_helper.from_array(array.astype(np.float32), name))
    data = model.SerializeToString()
    dst.mkdir(parents=True)
    (dst / "model.onnx").write_bytes(data)
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["version"] = version
    manifest["sha256"] = {"model.onnx": hashlib.sha256(data).hexdigest()}
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dst


def lower_class(class_index: int, logit_drop: float) -> Callable[[Head], None]:
    """Every score of one class lowered: its bias shifted down by `logit_drop` (sigmoid
    scores shrink by about exp(-logit_drop))."""

    def change(arrays: Head) -> None:
        for head in CLASS_HEADS:
            arrays[f"{head}.bias"][class_index] -= logit_drop

    return change


def jitter_weights(
    relative: float, seed: int, rows: Sequence[int] | None = None
) -> Callable[[Head], None]:
    """Seeded Gaussian noise on the class weights (all classes, or the given class rows),
    `relative` times each head's spread."""

    def change(arrays: Head) -> None:
        rng = np.random.default_rng(seed)
        for head in CLASS_HEADS:
            weight = arrays[f"{head}.weight"]
            picked = list(range(weight.shape[0])) if rows is None else list(rows)
            noise = rng.normal(0.0, relative * float(weight.std()), weight[picked].shape)
            weight[picked] += noise

    return change


def copy_demo(dst: Path) -> Path:
    shutil.copytree(DEMO, dst)
    return dst
