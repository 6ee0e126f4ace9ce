"""`edge acceptance` as a vendor runs it: real subprocesses on a small simulated suite, a
passing and a degraded model, the image-quality item, exit statuses, the signed report."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from calibration.history import record
from edge.store.test_runs import get_test_run
from edge.validation.report import verify_report
from edge.validation.report_html import embedded_document

from .model_variants import DEMO, lower_class, write_variant
from .suite_files import make_sim_suite, rehash

pytestmark = pytest.mark.slow

ACCEPTANCE_POLICY = """
[slices]
report = ["clutter"]
min_samples = 1
[absolute]
pfa_max = 0.5
[absolute.pd_min]
default = 0.3
gun = 0.8
[latency]
p95_ms_max = 10000.0
[behaviour]
repeat_frames = 2
flip_frames = 0
projection_per_class = 0
"""  # no [non_regression]: its default (required) is what acceptance leaves out


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_sim_suite(tmp_path_factory.mktemp("acceptance") / "suite")
    (root / "policy.toml").write_text(ACCEPTANCE_POLICY)
    rehash(root)
    return root


def acceptance(suite: Path, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "acceptance", "--suite", str(suite),
         "--site", "Terminal 2, lane 4", "--operator", "A. Vendor", "--data", str(data), *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def items(doc: dict[str, Any]) -> dict[str, tuple[bool, bool]]:
    return {i["name"]: (i["passed"], i["waived"]) for i in doc["items"]}


def test_a_good_model_with_a_recent_test_piece_check_passes(suite: Path, tmp_path: Path) -> None:
    data = tmp_path / "var"
    record(data, {"passed": True, "failures": [], "wire_mm": 0.1})
    report = tmp_path / "acceptance.html"
    proc = acceptance(suite, data, "--model", str(DEMO), "--report", str(report), "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    doc = json.loads(proc.stdout)
    assert verify_report(doc) and verify_report(doc["test"]) and doc["passed"]
    assert items(doc) == {
        "suite gates": (True, False),
        "latency": (True, False),
        "image quality": (True, False),
    }
    assert doc["test"]["policy"]["non_regression"]["required"] is False
    assert doc["signature"]["site"] == "Terminal 2, lane 4"
    assert doc["signature"]["operator"] == "A. Vendor"
    html = report.read_text()
    assert embedded_document(html) == doc == json.loads(report.with_suffix(".json").read_text())
    assert 'id="signatures"' in html and "Vendor representative" in html
    assert html.count(doc["sha256"]) >= 2  # the integrity section and the signature block
    with sqlite3.connect(data / "edge.db") as conn:
        stored = get_test_run(conn, doc["run_id"])
    assert (stored.kind, stored.passed, stored.report_sha256) == ("acceptance", True, doc["sha256"])
    assert stored.report == doc


def test_a_degraded_model_fails_on_its_lost_class(suite: Path, tmp_path: Path) -> None:
    weak = write_variant(tmp_path / "weak", "1.0.1-weak", lower_class(0, 8.0))
    proc = acceptance(suite, tmp_path / "var", "--model", str(weak),
                      "--waive-image-quality", "bench run, no scanner")  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "FAILED" in proc.stdout
    assert "suite gates    FAILED" in proc.stdout and "Pd gun" in proc.stdout
    assert "image quality  waived: no image-quality check available" in proc.stdout
    assert "bench run, no scanner" in proc.stdout


def test_no_image_quality_check_fails_unless_waived(suite: Path, tmp_path: Path) -> None:
    data = tmp_path / "var"
    proc = acceptance(suite, data, "--model", str(DEMO), "--json", "--no-record")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert items(doc)["image quality"] == (False, False)
    assert items(doc)["suite gates"] == (True, False)
    assert "no image-quality check available" in doc["image_quality"]["detail"]
    assert not (data / "edge.db").exists()
    record(data, {"passed": False, "failures": ["wire 0.1 mm not seen"]})
    proc = acceptance(suite, data, "--model", str(DEMO), "--waive-image-quality", "x")
    assert proc.returncode == 1  # a failed check is not waived
    assert "wire 0.1 mm not seen" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--site", " "], "--site: expected a name"),
        (["--suite", "{tmp}/nowhere"], "not a suite (no suite.json)"),
        (["--model", "{tmp}"], "manifest.json: not found"),
    ],
)
def test_bad_input_exits_2(suite: Path, tmp_path: Path, args: list[str], message: str) -> None:
    given = [a.format(tmp=tmp_path) for a in args]
    proc = acceptance(suite, tmp_path / "var", *given, "--no-record")
    assert proc.returncode == 2, proc.stdout
    assert proc.stdout == "" and message in proc.stderr
