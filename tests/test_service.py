"""The service's sources wired to the real pipeline and store: a scanner on a pty streams
bags; every one is ACKed stored, screened, and answered with a RESULT matching the store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge.config import DEFAULT_MODEL_DIR, SerialSource
from edge.detector import Detector
from edge.pipeline import LocalScreener, Pipeline
from edge.sim.scanner import PtyPair, ScannerEmulator
from edge.sources import serial_source
from edge.store import Store

BAGS = 200


@pytest.mark.slow
def test_a_scanner_streams_200_bags_and_every_result_matches_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    pipeline = Pipeline(LocalScreener(Detector.load(DEFAULT_MODEL_DIR)), store=store)
    with PtyPair() as pty:
        link = serial_source(pipeline, SerialSource(type="serial", url=pty.paths[0]), 64 << 20)
        link.start()
        try:
            report = ScannerEmulator(
                pty.paths[1], rate_hz=0, bags=BAGS, seed=500, downsample=2, timeout_s=60
            ).run()
        finally:
            link.stop()
            pipeline.close()
    assert report.ok(), report.summary()
    assert report.stored == BAGS and len(report.result_payloads) == BAGS
    assert not report.missing_acks and not report.missing_results

    for scanner_frame, message in report.result_payloads.items():
        frame_id = report.stored_ids[scanner_frame]
        assert message["id"] == frame_id and message["frame"] == scanner_frame
        stored = store.get_frame(str(frame_id))
        assert stored.scanner_frame_id == scanner_frame
        assert stored.result is not None
        assert message["alarm"] == stored.result.alarm
        assert message["model"] == "demo-xray-det@1.0.0"
        assert [d["class"] for d in message["detections"]] == [
            d["class"] for d in stored.result.detections
        ]
        image = store.load_image(str(frame_id))  # pixels checked against the stored hash
        assert image.high is not None and image.high.shape == (stored.height, stored.width)
    store.close()
    with sqlite3.connect(tmp_path / "data" / "edge.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM frames").fetchone()[0] == BAGS


def test_a_dicos_frame_from_the_hot_folder_gets_a_tdr(tmp_path: Path) -> None:
    import shutil
    import warnings

    import pydicom

    from edge.config import FolderSource
    from edge.sources import folder_source, tdr_writer
    from edge.tdr import TDR_SOP_CLASS_UID

    fixture = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "dicos"
    store = Store(tmp_path / "data")
    pipeline = Pipeline(LocalScreener(Detector.load(DEFAULT_MODEL_DIR)), store=store)
    pipeline.subscribe(tdr_writer(tmp_path / "tdr"))
    (tmp_path / "tdr").mkdir()
    inbox = tmp_path / "inbox"
    folder = folder_source(pipeline, FolderSource(type="folder", path=inbox, settle_s=0))
    inbox.mkdir()
    folder.start()
    folder.stop()
    shutil.copy(fixture / "SimpleProcessingDX.dcs", inbox / "scan.dcs")
    assert folder.scan_once(now=0.0) == 1
    pipeline.close()
    (screened,) = pipeline.recent()
    assert screened.logged and (inbox / "processed" / "scan.dcs").exists()
    with warnings.catch_warnings():  # the toolkit's UIDs have leading zeros
        warnings.simplefilter("ignore", UserWarning)
        source = pydicom.dcmread(fixture / "SimpleProcessingDX.dcs")
        tdr = pydicom.dcmread(tmp_path / "tdr" / f"{screened.id}.dcs")
        assert tdr.SOPClassUID == TDR_SOP_CLASS_UID
        assert tdr.StudyInstanceUID == source.StudyInstanceUID
        assert source.SOPInstanceUID in str(tdr)
    store.close()
