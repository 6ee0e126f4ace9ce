"""`edge calibrate thresholds`: operating points on a calibration set, the device overrides
and the service applying them only to the model they were made for.

The model is a real ONNX graph whose scores the test controls: gun = the image's mean red,
knife = its mean green (two anchors, yolov8 layout). Bags are uniform 64x64 PNGs whose
colour draws the score: threat bags from a high band, clean bags from a low one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from calibration.overrides import overrides_path, thresholds_for
from edge.cli import main
from edge.frames import Frame
from edge.service import load_detector
from edge.validation.bags import bag_figures, bag_outcome
from edge.validation.stats import rate

CLASSES = ["gun", "knife"]


def colour_score_graph(size: float = 12.0) -> Any:
    """(1, 3, 64, 64) -> (1, 6, 2): anchor 0 scores gun = mean(R), anchor 1 knife = mean(G)."""
    weights = np.zeros((3, 4), np.float32)
    weights[0, 0] = 1.0  # gun row, anchor 0
    weights[1, 3] = 1.0  # knife row, anchor 1
    boxes = np.array([[[16, 48], [16, 48], [size, size], [size, size]]], np.float32)  # cxcywh
    nodes = [
        helper.make_node("ReduceMean", ["images", "axes"], ["means"], keepdims=0),
        helper.make_node("MatMul", ["means", "weights"], ["flat"]),
        helper.make_node("Reshape", ["flat", "shape"], ["scores"]),
        helper.make_node("Concat", ["boxes", "scores"], ["output0"], axis=1),
    ]
    inits = [
        numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
        numpy_helper.from_array(weights, "weights"),
        numpy_helper.from_array(np.array([1, 2, 2], np.int64), "shape"),
        numpy_helper.from_array(boxes, "boxes"),
    ]
    graph = helper.make_graph(
        nodes,
        "colour-score",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


@pytest.fixture
def model_dir(tiny_model_dir: Callable[..., Path]) -> Callable[..., Path]:
    def make(version: str = "0.1.0", size: float = 12.0) -> Path:
        def edit(m: dict[str, Any]) -> None:
            m["classes"], m["version"], m["thresholds"] = CLASSES, version, {"default": 0.5}

        return tiny_model_dir(model=colour_score_graph(size), edit=edit)

    return make


def write_set(folder: Path, count: int, seed: int) -> Path:
    """`count` bags: a third gun, a third knife, a third clean (scores as described above)."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(count):
        kind = i % 3  # 0 gun, 1 knife, 2 clean
        rgb = [rng.uniform(0.0, 0.45), rng.uniform(0.0, 0.45), 0.2]
        if kind < 2:
            rgb[kind] = rng.uniform(0.3, 0.95)
        pixels = np.zeros((64, 64, 3), np.uint8)
        pixels[:] = np.round(np.array(rgb) * 255).astype(np.uint8)
        name = f"images/{i:04d}.png"
        cv2.imwrite(str(folder / name), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        images.append({"id": i + 1, "file_name": name, "width": 64, "height": 64})
        if kind < 2:
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i + 1, "category_id": kind + 1,
                 "bbox": [10, 10, 12, 12], "area": 144, "iscrowd": 0}
            )  # fmt: skip
    categories = [{"id": k + 1, "name": n} for k, n in enumerate(CLASSES)]
    doc = {"images": images, "annotations": annotations, "categories": categories}
    (folder / "annotations.json").write_text(json.dumps(doc))
    return folder


def calibrate(
    capsys: pytest.CaptureFixture[str], data: Path, *args: str
) -> tuple[int, dict[str, Any]]:
    code = main(["calibrate", "thresholds", "--data", str(data), "--json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def test_chosen_thresholds_reach_the_target_on_held_out_bags(
    tmp_path: Path, model_dir: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model = model_dir()
    data = tmp_path / "var"
    calibration_set = write_set(tmp_path / "cal", 90, seed=1)
    code, doc = calibrate(
        capsys, data, "--model", str(model), "--dataset", str(calibration_set),
        "--target-pd", "0.9", "--max-pfa", "0.9",
    )  # fmt: skip
    assert code == 0, doc["failures"]
    chosen = doc["chosen"]
    for name in CLASSES:
        pd = chosen["classes"][name]["pd"]
        assert pd["value"] >= 0.9 and pd["low"] <= pd["value"] <= pd["high"]
        assert pd["total"] == 30
    # The report's curves agree with the chosen point.
    grid = doc["curves"]["thresholds"]
    assert grid[0] == 0.0 and grid[-1] == 1.0
    assert doc["curves"]["classes"]["gun"]["pd"][0] == 1.0
    overrides = json.loads(overrides_path(data).read_text())
    assert overrides["thresholds"] == chosen["thresholds"]
    assert overrides["model"]["sha256"] == doc["model"]["sha256"]
    assert Path(doc["report"]).is_file()
    # Held out: fresh bags at the chosen thresholds reach Pd within the interval.
    held_out = write_set(tmp_path / "held", 90, seed=2)
    gt = json.loads((held_out / "annotations.json").read_text())
    truth = {a["image_id"]: a["category_id"] - 1 for a in gt["annotations"]}
    outcomes = []
    for record in gt["images"]:
        bgr = cv2.imread(str(held_out / record["file_name"]))
        mean = bgr[..., ::-1].reshape(-1, 3).mean(axis=0) / 255.0
        scores = np.array([mean[0], mean[1]], np.float32)
        label = [truth[record["id"]]] if record["id"] in truth else []
        outcomes.append(bag_outcome(label, np.array([0, 1]), scores, 2))
    figures = bag_figures(outcomes, CLASSES, chosen["thresholds"])
    for name in CLASSES:
        hits, total = figures.pd_counts[name]
        held = rate(hits, total)
        assert held.high >= 0.9, f"{name}: held-out Pd {held.value:.2f} is significantly below"
        assert held.value >= chosen["classes"][name]["pd"]["low"]


def test_the_service_applies_overrides_only_to_their_model(
    tmp_path: Path,
    model_dir: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    calibrated, other = model_dir("0.1.0"), model_dir("0.2.0", size=10.0)  # another graph
    data = tmp_path / "var"
    (data / "calibration").mkdir(parents=True)
    overrides_path(data).write_text(
        json.dumps(
            {
                "format": "edge-thresholds/1",
                "model": {"name": "tiny", "version": "0.1.0", "sha256": _sha(calibrated)},
                "thresholds": {"gun": 0.35, "knife": 0.6},
            }
        )
    )
    assert thresholds_for(data, calibrated) == {"gun": 0.35, "knife": 0.6}
    with caplog.at_level(logging.WARNING, logger="calibration.overrides"):
        assert thresholds_for(data, other) is None
    assert "calibrated for model tiny@0.1.0" in caplog.text and "ignored" in caplog.text

    with caplog.at_level(logging.INFO, logger="edge.service"):
        detector, error = load_detector(calibrated, data_dir=data)
    assert detector is not None, error
    try:
        assert detector.info is not None
        assert detector.info.thresholds == pytest.approx({"gun": 0.35, "knife": 0.6})
        assert "device calibration" in caplog.text
        # A red bag scoring 0.4 for gun alarms at the device's 0.35 (the manifest says 0.5).
        frame = np.zeros((64, 64, 3), np.uint8)
        frame[..., 0] = 102
        result = detector.screen(Frame(rgb=frame))
        assert list(result.detections.class_ids) == [0]
    finally:
        detector.close()
    with caplog.at_level(logging.INFO):
        detector, error = load_detector(other, data_dir=data)
    assert detector is not None, error
    try:
        assert detector.info is not None
        assert detector.info.thresholds == pytest.approx({"gun": 0.5, "knife": 0.5})
        assert "tiny@0.2.0 (model manifest): gun 0.5, knife 0.5" in caplog.text
        assert "not for tiny@0.2.0" in caplog.text  # the overrides ignored, with a warning
        assert detector.screen(Frame(rgb=frame)).alarm is False
    finally:
        detector.close()


def _sha(model: Path) -> str:
    return str(json.loads((model / "manifest.json").read_text())["sha256"]["model.onnx"])


def test_an_unreachable_target_writes_nothing_and_fails(
    tmp_path: Path, model_dir: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "var"
    cal = write_set(tmp_path / "cal", 30, seed=3)
    doc = json.loads((cal / "annotations.json").read_text())
    for record in doc["images"][:3]:  # a gun bag scoring 0: the model misses it
        if any(a["image_id"] == record["id"] and a["category_id"] == 1 for a in doc["annotations"]):
            cv2.imwrite(str(cal / record["file_name"]), np.zeros((64, 64, 3), np.uint8))
    code, out = calibrate(
        capsys, data, "--model", str(model_dir()), "--dataset", str(cal), "--target-pd", "1"
    )
    assert code == 1
    assert out["chosen"]["unreached"] == ["gun"]
    assert "gun: target Pd 1 not reached" in out["failures"][0]
    assert out["overrides"] is None and not overrides_path(data).exists()


def test_max_pfa_over_the_bar_fails(
    tmp_path: Path, model_dir: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "var"
    cal = write_set(tmp_path / "cal", 30, seed=4)
    code, out = calibrate(
        capsys, data, "--model", str(model_dir()), "--dataset", str(cal),
        "--target-pd", "1", "--max-pfa", "0",
    )  # fmt: skip
    assert code == 1 and "over --max-pfa 0" in out["failures"][-1]
    assert not overrides_path(data).exists()


def suite_folder(root: Path) -> Path:
    write_set(root / "sim", 6, seed=5)
    (root / "suite.json").write_text(json.dumps({"format": "edge-suite/1", "files": {}}))
    return root


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "{tmp}/nowhere", "--dataset", "{cal}"], "no such model directory"),
        (["--model", "{model}", "--dataset", "{tmp}/empty"], "not a COCO data set"),
        (["--model", "{model}", "--dataset", "{tmp}/none"], "holds no images"),
        (["--model", "{model}", "--dataset", "{cal}", "--target-pd", "0"], "(0, 1]"),
        (["--model", "{model}", "--dataset", "{cal}", "--target-pd", "1.2"], "(0, 1]"),
        (["--model", "{model}", "--dataset", "{cal}", "--max-pfa", "-1"], "--max-pfa"),
        (["--model", "{model}", "--dataset", "{tmp}/var/suite"], "device's regression suite"),
        (["--model", "{model}", "--dataset", "{tmp}/var/suite/sim"], "device's regression"),
        (["--model", "{model}", "--dataset", "{tmp}/acceptance"], "acceptance test set"),
        (["--model", "{model}", "--dataset", "{tmp}/copy"], "a copy of sim/annotations.json"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(
    tmp_path: Path,
    model_dir: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    data = tmp_path / "var"
    suite = suite_folder(data / "suite")
    listed = {"sim/annotations.json": _sha_file(suite / "sim" / "annotations.json")}
    (suite / "suite.json").write_text(json.dumps({"format": "edge-suite/1", "files": listed}))
    suite_folder(tmp_path / "acceptance")
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "annotations.json").write_bytes((suite / "sim" / "annotations.json").read_bytes())
    (tmp_path / "empty").mkdir()
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "annotations.json").write_text(
        json.dumps({"images": [], "annotations": [], "categories": []})
    )
    cal = write_set(tmp_path / "cal", 6, seed=6)
    values = {"tmp": str(tmp_path), "cal": str(cal), "model": str(model_dir())}
    argv = [a.format(**values) for a in args]
    if "--target-pd" not in argv:
        argv += ["--target-pd", "0.9"]
    code = main(["calibrate", "thresholds", "--data", str(data), *argv])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not overrides_path(data).exists()


def _sha_file(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_text_report_says_what_is_in_force(
    tmp_path: Path, model_dir: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data, cal = tmp_path / "var", write_set(tmp_path / "cal", 30, seed=7)
    argv = ["--model", str(model_dir()), "--dataset", str(cal), "--target-pd", "0.9"]
    assert main(["calibrate", "thresholds", "--data", str(data), *argv]) == 0
    out = capsys.readouterr().out
    assert "operating point CALIBRATED for tiny@0.1.0 on 30 bags" in out
    assert f"written to {overrides_path(data)}" in out and "Pfa (all classes" in out
