"""The service corrects raw frames with the active profile before they are stored."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from calibration import profile as profiles
from calibration.flatfield import Scan, build_flatfield
from calibration.ingest import FrameCalibration
from edge.config import FolderSource
from edge.frames import AIR_LEVEL, Frame
from edge.pipeline import Pipeline
from edge.sim.pieces import render_wedges
from edge.sim.raw import air_scan, dark_scan, detector_response, raw_frame
from edge.sources import folder_source
from edge.store import Store

from .scans import write_tiff

WIDTH = 300
RESPONSE = detector_response(WIDTH, seed=3)


def calibrate(data: Path) -> None:
    dark = [Scan(f"d{i}", dark_scan(RESPONSE, 80, seed=i)) for i in range(3)]
    air = [Scan(f"a{i}", air_scan(RESPONSE, 80, seed=9 + i)) for i in range(3)]
    profiles.save(data, build_flatfield(dark, air), None, [], {})


def test_folder_frames_are_stored_corrected_and_raw_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    calibrate(data)
    truth = render_wedges(frame=(220, WIDTH), seed=5)
    raw = raw_frame({"high": truth.high, "low": truth.low}, RESPONSE, seed=6)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    store = Store(data)
    pipeline = Pipeline(None, store=store)
    calibration = FrameCalibration(data, keep_raw=True)
    folder = folder_source(
        pipeline, FolderSource(type="folder", path=inbox, settle_s=0), calibration
    )
    folder.start()
    folder.stop()
    write_tiff(inbox / "bag.tiff", raw)
    assert folder.scan_once(now=0.0) == 1
    pipeline.close()
    (screened,) = pipeline.recent()
    stored = store.get_frame(screened.id)
    assert stored.metadata["calibration"] == {"profile": "scanner-0001"}
    high = cv2.imread(str(data / stored.image_paths[0]), cv2.IMREAD_UNCHANGED)
    error = np.abs(high.astype(float) - truth.high.astype(float)) / AIR_LEVEL
    assert np.median(error) < 0.001
    kept = data / "calibration" / "raw" / f"{screened.id}.tiff"
    assert kept.is_file()
    store.close()


def test_frames_pass_untouched_without_a_profile_or_raw_channels(tmp_path: Path) -> None:
    calibration = FrameCalibration(tmp_path)
    frame = Frame(high=np.full((4, WIDTH), 100, np.uint16))
    assert calibration.apply(frame) is frame
    calibrate(tmp_path)
    rgb = Frame(rgb=np.zeros((4, 4, 3), np.uint8))
    assert calibration.apply(rgb) is rgb


def test_a_frame_of_another_width_passes_uncorrected_with_the_reason(tmp_path: Path) -> None:
    calibrate(tmp_path)
    frame = Frame(high=np.full((4, 310), 100, np.uint16), low=np.full((4, 310), 100, np.uint16))
    out = FrameCalibration(tmp_path).apply(frame)
    assert out.high is frame.high
    assert "310 pixels wide" in out.meta["calibration"]["reason"]


def test_a_newer_profile_takes_over_without_a_restart(tmp_path: Path) -> None:
    calibrate(tmp_path)
    calibration = FrameCalibration(tmp_path)
    flat = np.full((4, WIDTH), 60000, np.uint16)
    frame = Frame(**raw_frame({"high": flat, "low": flat}, RESPONSE))
    assert calibration.apply(frame).meta["calibration"]["profile"] == "scanner-0001"
    calibrate(tmp_path)
    assert calibration.apply(frame).meta["calibration"]["profile"] == "scanner-0002"
