"""`edge calibrate scanner|testpiece` end to end, on simulated raw scan files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calibration import profile as profiles
from edge.cli import main
from edge.sim.pieces import render_test_piece
from edge.sim.quality import ScannerQuality
from edge.sim.raw import detector_response, raw_frame

from .scans import WIDTH, write_scans, write_tiff, write_wedges

RESPONSE = detector_response(WIDTH, seed=11)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    status = main([*argv, "--json"])
    out = capsys.readouterr().out
    return status, json.loads(out) if out.strip() else {}


def test_scanner_builds_a_versioned_profile_with_its_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    dark, air = write_scans(tmp_path / "day1", RESPONSE)
    wedges = write_wedges(tmp_path / "day1", RESPONSE)
    status, doc = run(
        capsys, "calibrate", "scanner", "--data", str(data), "--dark", *dark, "--air", *air,
        "--wedges", *wedges,
    )  # fmt: skip
    assert status == 0 and doc["profile"] == "scanner-0001"
    assert doc["target_met"] and doc["bad_pixels"] == 4 and doc["drift_since"] is None
    for c in ("high", "low"):
        assert doc["nonuniformity_before"][c] > 0.05 and doc["nonuniformity_after"][c] <= 0.01
    for material, figures in doc["materials"]["held_out"].items():
        assert figures["accuracy"] >= 0.95, material
    header = json.loads((data / "calibration" / "scanner-0001.json").read_text())
    assert header["version"] == 1 and header["created"].endswith("Z")
    assert len(header["sources"]) == 12 and all(len(s["sha256"]) == 64 for s in header["sources"])
    assert header["materials"]["organic_max"]

    dark, air = write_scans(tmp_path / "day3", RESPONSE, hours=48)
    status, doc = run(
        capsys, "calibrate", "scanner", "--data", str(data), "--dark", *dark, "--air", *air
    )
    assert status == 0 and doc["profile"] == "scanner-0002"
    assert doc["drift_since"] == "scanner-0001" and doc["drift"]["low"]["response_change"] > 0.05
    assert doc["materials"] == {"carried_from": "scanner-0001"}
    active = profiles.active(data)
    assert active is not None and active.version == 2 and active.curves is not None


def test_scanner_refuses_swapped_scans_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dark, air = write_scans(tmp_path, RESPONSE)
    status = main(
        ["calibrate", "scanner", "--data", str(tmp_path / "d"), "--dark", *air, "--air", *dark]
    )
    assert status == 2
    assert "that is an air scan (beam on)" in capsys.readouterr().err
    assert profiles.versions(tmp_path / "d") == []


def test_testpiece_check_is_recorded_and_shown_as_a_trend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    good = render_test_piece(seed=1)
    bad = render_test_piece(seed=2, quality=ScannerQuality(kv=0.8))
    good_path = write_tiff(tmp_path / "good.tiff", {"high": good.high, "low": good.low})
    bad_path = write_tiff(tmp_path / "bad.tiff", {"high": bad.high, "low": bad.low})
    status, doc = run(capsys, "calibrate", "testpiece", str(good_path), "--data", str(data))
    assert status == 0 and doc["passed"] and doc["thinnest_wire_mm"] == 0.18
    status, doc = run(capsys, "calibrate", "testpiece", str(bad_path), "--data", str(data))
    assert status == 1 and not doc["passed"]
    assert doc["failures"] == ["a wire is seen through 10 mm of steel, needs 14 mm or more"]
    status, doc = run(capsys, "calibrate", "testpiece", "--history", "--data", str(data))
    assert [c["passed"] for c in doc["checks"]] == [True, False]
    assert main(["calibrate", "testpiece", "--history", "--data", str(data)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[1:] == ["pass", "0.18", "17", "1.6", "0.3"]
    assert table[2].split()[1:] == ["FAIL", "0.18", "10", "1.6", "0.3"]


def test_testpiece_on_a_raw_scan_applies_the_active_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, response = tmp_path / "data", detector_response(400, seed=5)
    dark, air = write_scans(tmp_path, response)
    assert main(["calibrate", "scanner", "--data", str(data), "--dark", *dark, "--air", *air]) == 0
    piece = render_test_piece((30, 20), (240, 400), seed=3)
    raw = raw_frame({"high": piece.high, "low": piece.low}, response, seed=4)
    path = write_tiff(tmp_path / "raw-piece.tiff", raw)
    capsys.readouterr()
    status, doc = run(capsys, "calibrate", "testpiece", str(path), "--raw", "--data", str(data))
    assert status == 0 and doc["profile"] == "scanner-0001"
    found = (doc["thinnest_wire_mm"], doc["thickest_steel_mm"], doc["finest_grating_mm"])
    assert found == (0.18, 17.0, 1.6) and doc["thinnest_organic_mm"] == 0.3
