"""`--thresholds manifest|device|FILE` of `edge test` and `edge acceptance` as a technician
runs them: real subprocesses, the device's overrides deciding a verdict, bad files exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from calibration.overrides import overrides_path

from .model_variants import DEMO
from .suite_files import make_sim_suite, make_suite, rehash
from .test_acceptance_cmd import ACCEPTANCE_POLICY
from .test_test_cmd import CLI_POLICY
from .test_thresholds import CLASSES, calibrate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sim_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_sim_suite(tmp_path_factory.mktemp("thresholds") / "suite")
    (root / "policy.toml").write_text(ACCEPTANCE_POLICY)
    rehash(root)
    return root


def edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, timeout=300
    )


def accept(suite: Path, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return edge("acceptance", "--suite", str(suite), "--site", "lab", "--operator", "T. Ech",
                "--data", str(data), "--model", str(DEMO), "--waive-image-quality", "bench",
                "--no-record", *args)  # fmt: skip


def test_acceptance_judges_at_the_devices_thresholds_unless_told(
    sim_suite: Path, tmp_path: Path
) -> None:
    data = tmp_path / "var"
    calibrate(data, DEMO, {"gun": 1.0})  # this device never alarms on a gun
    proc = accept(sim_suite, data, "--json")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    point = doc["model"]["operating_point"]
    assert point["source"] == "device" and point["path"] == str(overrides_path(data))
    assert point["classes"]["gun"] == {"threshold": 1.0, "source": "device", "manifest": 0.3}
    assert point["classes"]["knife"]["source"] == "manifest"
    suite_item = next(i for i in doc["items"] if i["name"] == "suite gates")
    assert not suite_item["passed"] and "Pd gun" in suite_item["detail"]
    proc = accept(sim_suite, data, "--thresholds", "manifest")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "thresholds: gun 0.3 (manifest)" in proc.stdout
    # A file: the same verdict as the device's overrides, and the text says so.
    file = tmp_path / "t.json"
    file.write_text('{"gun": 1.0}')
    proc = accept(sim_suite, tmp_path / "empty", "--thresholds", str(file))
    assert proc.returncode == 1, proc.stderr
    assert "thresholds: gun 1 (file), knife 0.3 (manifest)" in proc.stdout
    assert f"the file {file}" in proc.stdout


def test_edge_test_reports_each_models_thresholds(tmp_path: Path) -> None:
    suite = make_suite(tmp_path / "suite", policy=CLI_POLICY)
    data = tmp_path / "var"
    calibrate(data, DEMO, {"knife": 0.55})
    report = tmp_path / "report.html"
    proc = edge("test", "--model", str(DEMO), "--suite", str(suite), "--baseline", str(DEMO),
                "--data", str(data), "--report", str(report))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "  thresholds: gun 0.3 (manifest), knife 0.55 (device)" in proc.stdout
    assert "  baseline: demo-xray-det@1.0.0, thresholds: gun 0.3 (manifest), knife 0.55" in (
        proc.stdout
    )
    doc = json.loads(report.with_suffix(".json").read_text())
    assert doc["model"]["thresholds"]["knife"] == 0.55
    assert doc["baseline"]["operating_point"]["classes"]["knife"]["source"] == "device"
    assert 'id="thresholds"' in report.read_text()
    proc = edge("test", "--model", str(DEMO), "--suite", str(suite), "--data", str(data),
                "--thresholds", "manifest", "--json", "--no-record")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["model"]["thresholds"] == dict.fromkeys(CLASSES, 0.3)
    assert doc["model"]["operating_point"]["source"] == "manifest"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"gun": 0.4', "not valid JSON"),
        ('{"gun": 2}', "'gun': 2 is out of range"),
        ('{"rifle": 0.4}', "unknown class(es) rifle for model demo-xray-det@1.0.0"),
        (None, "cannot read"),
    ],
)
def test_a_bad_thresholds_file_exits_2(tmp_path: Path, content: str | None, message: str) -> None:
    suite = make_suite(tmp_path / "suite", policy=CLI_POLICY)
    file = tmp_path / "t.json"
    if content is not None:
        file.write_text(content)
    proc = edge("test", "--model", str(DEMO), "--suite", str(suite), "--thresholds", str(file),
                "--data", str(tmp_path / "var"), "--no-record")  # fmt: skip
    assert proc.returncode == 2, proc.stdout
    assert proc.stdout == "" and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
