"""The `edge` command as a user runs it: real subprocesses, real files, exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "dicos"
DX_FILES = [
    "SimpleProcessingDX.dcs",
    "SimplePresentationDX.dcs",
    "v02_dx_jpeg_lossless.dcs",
    "v03_dx_explicit_le.dcs",
]


def edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ds")
    proc = edge("simulate", "dataset", "--out", str(out), "--count", "3", "--seed", "11", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["images"] == 3
    return out


def test_help_lists_the_verbs() -> None:
    proc = edge("--help")
    assert proc.returncode == 0
    for verb in ("detect", "serve", "simulate", "doctor"):
        assert verb in proc.stdout


def test_detect_json_on_simulated_images_and_dicos(dataset: Path) -> None:
    images = [str(dataset / "images" / "000001.png"), str(dataset / "images" / "000002_high.png")]
    images += [str(FIXTURES / name) for name in DX_FILES]
    proc = edge("detect", *images, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # exactly one JSON document
    assert doc["model"] == "demo-xray-det@1.0.0"
    assert [r["path"] for r in doc["images"]] == images
    for record in doc["images"]:
        assert record["model"] == "demo-xray-det@1.0.0"
        assert set(record["timings_ms"]) == {"preprocess", "inference", "postprocess"}
        for det in record["detections"]:
            x1, y1, x2, y2 = det["box"]
            assert 0 <= x1 <= x2 <= record["width"] and 0 <= y1 <= y2 <= record["height"]
            assert det["class"] in {"gun", "knife", "blade", "scissors", "bottle"}
            assert 0 < det["score"] <= 1


def test_detect_reports_bad_files_and_still_processes_the_rest(
    dataset: Path, tmp_path: Path
) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    good = str(dataset / "images" / "000003.png")
    tdr = str(FIXTURES / "SimpleBaggageTDR.dcs")
    proc = edge("detect", str(text), good, tdr, str(tmp_path / "missing.png"), "--json")
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["failed"] == 3
    assert "error" not in doc["images"][1] and "detections" in doc["images"][1]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("edge: ")]
    assert len(errors) == 3
    assert str(text) in errors[0] and tdr in errors[1] and "missing.png" in errors[2]


def test_detect_plain_output(dataset: Path) -> None:
    proc = edge("detect", str(dataset / "images" / "000001.png"))
    assert proc.returncode == 0, proc.stderr
    assert "demo-xray-det@1.0.0" in proc.stdout


def test_bad_model_directory_is_bad_input(tmp_path: Path, dataset: Path) -> None:
    proc = edge("detect", str(dataset / "images" / "000001.png"), "--model", str(tmp_path))
    assert proc.returncode == 2
    assert "manifest.json" in proc.stderr


@pytest.mark.parametrize("args", [["--count", "0"], ["--threat-ratio", "1.5"]])
def test_simulate_rejects_bad_arguments(tmp_path: Path, args: list[str]) -> None:
    proc = edge("simulate", "dataset", "--out", str(tmp_path), *args)
    assert proc.returncode == 2 and proc.stderr.startswith("edge: ")


def test_unknown_verb_is_usage_error() -> None:
    assert edge("frobnicate").returncode == 2
