"""The thresholds a test judges a model at: manifest, the device's overrides for the model's
SHA-256, or a file; the file's parser refuses what it cannot use; the report says which."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calibration.overrides import overrides_path, write_overrides
from edge.detector.manifest import load_model_dir
from edge.validation.regression import run_regression
from edge.validation.report import build_report
from edge.validation.report_html import render_html
from edge.validation.thresholds import (
    MAX_FILE_BYTES,
    ThresholdRule,
    ThresholdsFileError,
    read_thresholds_file,
    rule_from_arg,
)

from .model_variants import DEMO, copy_demo, jitter_weights, write_variant
from .suite_files import make_suite

CLASSES = ["gun", "knife", "blade", "scissors", "bottle"]
SHIPPED = 0.3  # the demo manifest's default


def calibrate(data: Path, model: Path, thresholds: dict[str, float]) -> None:
    """Device overrides for `model`, as `edge calibrate thresholds` writes them."""
    manifest = load_model_dir(model).manifest
    sha = manifest.sha256["model.onnx"]
    write_overrides(
        data,
        {
            "model": {"name": manifest.name, "version": manifest.version, "sha256": sha},
            "thresholds": thresholds,
            "created": "2026-11-27T20:00:00Z",
        },
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_thresholds_file_flat_or_as_an_overrides_document(tmp_path: Path) -> None:
    flat = write(tmp_path / "flat.json", '{"gun": 0.4, "knife": 1}')
    assert read_thresholds_file(flat) == {"gun": 0.4, "knife": 1.0}
    doc = write(tmp_path / "doc.json", json.dumps({"format": "x", "thresholds": {"gun": 0}}))
    assert read_thresholds_file(doc) == {"gun": 0.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[0.4]", "expected a JSON object of class thresholds"),
        ("{}", "expected a JSON object of class thresholds"),
        ('{"gun": 1.5}', "'gun': 1.5 is out of range"),
        ('{"gun": -0.1}', "'gun': -0.1 is out of range"),
        ('{"gun": NaN}', "'gun': nan is out of range"),
        ('{"gun": 1e999}', "'gun': inf is out of range"),
        ('{"gun": true}', "'gun': expected a score in [0, 1], got True"),
        ('{"gun": "0.4"}', "'gun': expected a score in [0, 1], got '0.4'"),
        (b"\xff\xfe{}", "not valid JSON"),
    ],
)
def test_a_malformed_thresholds_file_is_refused_in_one_line(
    tmp_path: Path, text: str | bytes, message: str
) -> None:
    path = tmp_path / "t.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ThresholdsFileError) as caught:
        read_thresholds_file(path)
    assert message in caught.value.message and str(path) in caught.value.message
    assert "\n" not in caught.value.message


def test_a_thresholds_file_has_a_size_limit_and_must_exist(tmp_path: Path) -> None:
    big = write(tmp_path / "big.json", '{"gun": 0.4' + " " * MAX_FILE_BYTES + "}")
    with pytest.raises(ThresholdsFileError, match="larger than"):
        read_thresholds_file(big)
    with pytest.raises(ThresholdsFileError, match="cannot read"):
        rule_from_arg(str(tmp_path / "nowhere.json"), None)


def test_a_file_naming_a_class_the_model_lacks_is_refused(tmp_path: Path) -> None:
    rule = rule_from_arg(str(write(tmp_path / "t.json", '{"gun": 0.5, "rifle": 0.2}')), None)
    with pytest.raises(ThresholdsFileError, match=r"unknown class\(es\) rifle for model demo"):
        rule.judge(load_model_dir(DEMO).manifest)


def test_each_source_per_class(tmp_path: Path) -> None:
    manifest = load_model_dir(DEMO).manifest
    data = tmp_path / "var"
    shipped = rule_from_arg("manifest", data).judge(manifest)
    assert shipped.thresholds == (SHIPPED,) * 5 and set(shipped.sources) == {"manifest"}
    # No overrides on the device: "device" is the manifest's, and says why.
    assert rule_from_arg(None, data).judge(manifest).thresholds == (SHIPPED,) * 5
    assert (
        "no device thresholds (none calibrated"
        in rule_from_arg("device", data).judge(manifest).detail
    )
    calibrate(data, DEMO, {"gun": 0.25, "knife": 0.6})
    device = rule_from_arg(None, data).judge(manifest)
    assert device.thresholds == (0.25, 0.6, SHIPPED, SHIPPED, SHIPPED)
    assert device.sources == ("device", "device", "manifest", "manifest", "manifest")
    assert device.path == str(overrides_path(data)) and "2026-11-27T20:00:00Z" in device.detail
    assert rule_from_arg("manifest", data).judge(manifest).thresholds == (SHIPPED,) * 5
    filed = rule_from_arg(str(write(tmp_path / "t.json", '{"bottle": 0.9}')), data)
    judged = filed.judge(manifest)
    assert judged.thresholds[4] == 0.9 and judged.sources[4] == "file"
    assert judged.as_json()["classes"]["bottle"] == {
        "threshold": 0.9,
        "source": "file",
        "manifest": SHIPPED,
    }
    # The file is for the tested model; the baseline runs as the device runs it.
    assert filed.for_baseline().judge(manifest).thresholds == device.thresholds
    assert ThresholdRule("file", None, tmp_path, {"gun": 0.1}).for_baseline().source == "manifest"


def test_overrides_for_another_model_leave_it_at_its_manifest(tmp_path: Path) -> None:
    data = tmp_path / "var"
    calibrate(data, DEMO, {"gun": 0.25})
    other = write_variant(tmp_path / "other", "1.0.1", jitter_weights(0.01, 1))
    judged = rule_from_arg("device", data).judge(load_model_dir(other).manifest)
    assert judged.thresholds == (SHIPPED,) * 5 and judged.source == "manifest"
    assert "calibrated for model demo-xray-det@1.0.0" in judged.detail
    assert "not this one" in judged.detail


def test_the_run_and_its_report_use_the_device_thresholds(tmp_path: Path) -> None:
    suite = make_suite(tmp_path / "suite", images=6)
    data = tmp_path / "var"
    baseline = copy_demo(tmp_path / "active")
    calibrate(data, DEMO, dict.fromkeys(CLASSES, 1.0))  # nothing scores above 1: no alarm
    everything = rule_from_arg(str(write(tmp_path / "t.json", '{"gun": 0.0}')), data)
    test = run_regression(DEMO, suite, baseline, thresholds=rule_from_arg(None, data))
    doc = build_report(test)
    assert doc["model"]["thresholds"] == dict.fromkeys(CLASSES, 1.0)
    assert doc["model"]["operating_point"]["source"] == "device"
    assert doc["baseline"]["operating_point"]["source"] == "device"  # the same SHA-256
    assert test.baseline_reused  # same graph, same thresholds
    overall = doc["metrics"]["bag"]["slices"][0]
    assert overall["pd"]["gun"]["hits"] == 0 and overall["pfa"]["hits"] == 0
    # The same model with every box above 0 an alarm for gun: the figures move with it.
    low = build_report(run_regression(DEMO, suite, baseline, thresholds=everything))
    assert low["model"]["operating_point"]["classes"]["gun"]["source"] == "file"
    assert low["baseline"]["operating_point"]["source"] == "device"
    assert not low["baseline"]["reused_candidate_run"]
    assert low["metrics"]["bag"]["slices"][0]["pd"]["gun"]["hits"] > 0
    html = render_html(doc)
    assert 'id="thresholds"' in html and "calibrated on this device" in html
    assert html.count("<td>device</td>") == 10  # 5 classes, model and baseline


def test_without_a_rule_the_manifest_applies(tmp_path: Path) -> None:
    suite = make_suite(tmp_path / "suite", images=2)
    calibrate(tmp_path / "var", DEMO, {"gun": 1.0})  # a data directory nobody named
    doc = build_report(run_regression(DEMO, suite))
    assert doc["model"]["thresholds"] == dict.fromkeys(CLASSES, SHIPPED)
    point = doc["model"]["operating_point"]
    assert point["source"] == "manifest" and point["path"] is None


def test_unreadable_overrides_leave_the_manifests_and_say_so(tmp_path: Path) -> None:
    data = tmp_path / "var"
    path = overrides_path(data)
    path.parent.mkdir(parents=True)
    path.write_text('{"format": "edge-thresholds/1", "thresholds": ')
    judged = rule_from_arg(None, data).judge(load_model_dir(DEMO).manifest)
    assert judged.thresholds == (SHIPPED,) * 5 and judged.source == "manifest"
    assert "unreadable" in judged.detail and str(path) in judged.detail
