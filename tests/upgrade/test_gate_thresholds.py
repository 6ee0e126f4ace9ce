"""The upgrade gate judges each model at the thresholds it runs with on this device: the
active model at its calibrated overrides, the candidate (another SHA-256) at its manifest's.

The story: this device was calibrated to cut the demo model's false alarms (knife and
scissors at 0.4). A candidate with the very same scores but its manifest's 0.3 brings them
back; judged at the manifests, the two look the same and the upgrade would slip through.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import onnx
import pytest
from validation.model_variants import DEMO, copy_demo
from validation.suite_files import make_sim_suite, rehash
from validation.test_thresholds import calibrate

from edge.store.test_runs import get_test_run
from edge.upgrade.gate import RegressionGate

pytestmark = pytest.mark.slow

GATE_POLICY = """
[slices]
report = ["clutter"]
min_samples = 1
[non_regression]
rule = "non_inferiority"
delta = 0.05
pfa_delta = 0.05
bootstrap_rounds = 500
[behaviour]
repeat_frames = 1
flip_frames = 0
projection_per_class = 0
"""


def repacked(dst: Path) -> Path:
    """The demo model, its graph's bytes changed (a doc string) but not its outputs: a new
    SHA-256, so the device's overrides are not its."""
    model = onnx.load(str(DEMO / "model.onnx"))
    model.doc_string = "repacked for the gate test"
    data = model.SerializeToString()
    dst.mkdir(parents=True)
    (dst / "model.onnx").write_bytes(data)
    manifest = json.loads((DEMO / "manifest.json").read_text())
    manifest["version"] = "1.0.1"
    manifest["sha256"] = {"model.onnx": hashlib.sha256(data).hexdigest()}
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_sim_suite(tmp_path_factory.mktemp("gate") / "suite")
    (root / "policy.toml").write_text(GATE_POLICY)
    rehash(root)
    return root


def stored_report(data: Path, run_id: str) -> dict[str, object]:
    with sqlite3.connect(data / "edge.db") as conn:
        report = get_test_run(conn, run_id).report
    assert isinstance(report, dict)
    return report


def test_the_gate_uses_the_active_models_overrides(suite: Path, tmp_path: Path) -> None:
    active, candidate = copy_demo(tmp_path / "active"), repacked(tmp_path / "candidate")
    data = tmp_path / "var"
    calibrate(data, active, {"knife": 0.4, "scissors": 0.4})
    result = RegressionGate(suite, record_in=data).check(candidate, active, suite)
    assert not result.passed
    assert [r["origin"] for r in result.runs] == ["device", "bundle"]
    assert all(not r["passed"] for r in result.runs)  # the bundle's tests judge alike
    assert any("change in Pfa" in f and "Pfa 0.000 -> 0.111" in f for f in result.failures)
    report = stored_report(data, str(result.runs[0]["run_id"]))
    baseline, model = report["baseline"], report["model"]
    assert isinstance(baseline, dict) and isinstance(model, dict)
    knife = baseline["operating_point"]["classes"]["knife"]
    assert knife == {"threshold": 0.4, "source": "device", "manifest": 0.3}
    assert model["operating_point"]["source"] == "manifest"
    assert model["thresholds"]["knife"] == 0.3
    assert "calibrated for model demo-xray-det@1.0.0" in model["operating_point"]["detail"]


def test_at_the_manifests_the_same_pair_passes(suite: Path, tmp_path: Path) -> None:
    active, candidate = copy_demo(tmp_path / "active"), repacked(tmp_path / "candidate")
    result = RegressionGate(suite, record_in=tmp_path / "uncalibrated").check(
        candidate, active, None
    )
    assert result.passed, result.failures


def test_a_candidate_the_overrides_were_made_for_runs_at_them(suite: Path, tmp_path: Path) -> None:
    """Reinstalling the calibrated model: the service would run it at the overrides (they
    are keyed to its SHA-256), so the gate judges it there too, and no gate records into
    a data directory it was not given."""
    active, candidate = repacked(tmp_path / "active"), copy_demo(tmp_path / "candidate")
    data = tmp_path / "var"
    calibrate(data, candidate, {"knife": 0.4, "scissors": 0.4})
    gate = RegressionGate(suite, data_dir=data)
    result = gate.check(candidate, active, None)
    # At 0.4 the candidate misses a knife bag the active model finds at its manifest's 0.3.
    assert not result.passed
    assert any("Pd knife 1.000 -> 0.667" in f for f in result.failures), result.failures
    assert result.runs[0]["run_id"] is None and not (data / "edge.db").exists()
