"""What the device's calibration changes, as the API shows it: the detection thresholds in
force (GET /api/models) and uploads of raw 16-bit frames flat-field corrected with the
scanner profile (POST /api/frames), as the serial and hot-folder sources are."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration import profile as profiles
from calibration.flatfield import Scan, build_flatfield
from calibration.ingest import FrameCalibration
from calibration.overrides import write_overrides
from edge.api.app import AppContext, create_app
from edge.auth import UserStore
from edge.detector.isolated import IsolatedDetector
from edge.frames import AIR_LEVEL
from edge.pipeline import Pipeline
from edge.sim.pieces import render_wedges
from edge.sim.raw import air_scan, dark_scan, detector_response, raw_frame
from edge.store import Store

from .accounts import TestClient, login

MakeDir = Callable[..., Path]
WIDTH = 300
RESPONSE = detector_response(WIDTH, seed=3)


def sha_of(model_dir: Path) -> str:
    return hashlib.sha256((model_dir / "model.onnx").read_bytes()).hexdigest()


def serve(tmp_path: Path, users: UserStore, detector: IsolatedDetector) -> Iterator[TestClient]:
    store = Store(tmp_path / "data")
    pipeline = Pipeline(detector, store=store)
    with TestClient(create_app(AppContext(service=pipeline, users=users, store=store))) as client:
        login(client, "tom")
        yield client
    pipeline.close()
    detector.close()
    store.close()


def test_models_shows_the_devices_thresholds_for_this_model(
    tmp_path: Path, users: UserStore, tiny_model_dir: MakeDir
) -> None:
    model = tiny_model_dir(edit=lambda m: m["thresholds"].update(knife=0.4))
    overrides = {"knife": 0.55, "gun": 0.2}
    write_overrides(
        tmp_path / "data",
        {"model": {"name": "tiny", "version": "0.1.0", "sha256": sha_of(model)},
         "thresholds": overrides, "created": "2026-11-27T20:00:00Z", "dataset": {"bags": 40}},
    )  # fmt: skip
    detector = IsolatedDetector(model, thresholds=overrides)
    detector.start()
    for client in serve(tmp_path, users, detector):
        shown = client.get("/api/models").json()["running"]["thresholds"]
        assert shown["source"] == "device calibration" and shown["note"] is None
        assert shown["manifest"] == {"gun": 0.25, "knife": 0.4, "blade": 0.25, "scissors": 0.25}
        assert shown["overrides"] == overrides
        # In force: what the detector's own process reports it applies.
        assert shown["in_force"] == {"gun": 0.2, "knife": 0.55, "blade": 0.25, "scissors": 0.25}
        assert shown["calibration"]["created"] == "2026-11-27T20:00:00Z"
        assert shown["calibration"]["file"].endswith("thresholds.json")


def test_thresholds_calibrated_for_another_model_are_shown_as_not_applied(
    tmp_path: Path, users: UserStore, tiny_model_dir: MakeDir
) -> None:
    model = tiny_model_dir()
    write_overrides(
        tmp_path / "data",
        {"model": {"name": "tiny", "version": "0.0.9", "sha256": "ab" * 32},
         "thresholds": {"knife": 0.9}},
    )  # fmt: skip
    detector = IsolatedDetector(model)
    detector.start()
    for client in serve(tmp_path, users, detector):
        shown = client.get("/api/models").json()["running"]["thresholds"]
        assert shown["source"] == "model manifest" and shown["overrides"] is None
        assert "calibrated for model tiny@0.0.9" in shown["note"]
        assert shown["in_force"]["knife"] == 0.25


# -------------------------------------------------------------------------------- uploads


def calibrate(data: Path) -> None:
    dark = [Scan(f"d{i}", dark_scan(RESPONSE, 80, seed=i)) for i in range(3)]
    air = [Scan(f"a{i}", air_scan(RESPONSE, 80, seed=9 + i)) for i in range(3)]
    profiles.save(data, build_flatfield(dark, air), None, [], {})


@pytest.fixture
def calibrated(tmp_path: Path, users: UserStore) -> Iterator[tuple[TestClient, Store]]:
    data = tmp_path / "data"
    calibrate(data)
    store = Store(data)
    pipeline = Pipeline(None, store=store)
    ctx = AppContext(
        service=pipeline, users=users, store=store,
        calibration=FrameCalibration(data, keep_raw=True),
    )  # fmt: skip
    with TestClient(create_app(ctx)) as client:
        client.headers["X-CSRF-Token"] = login(client, "olga")
        yield client, store
    pipeline.close()
    store.close()


def two_page_tiff(channels: dict[str, np.ndarray]) -> bytes:
    ok, data = cv2.imencodemulti(".tiff", [channels["high"], channels["low"]])
    assert ok
    return data.tobytes()


def test_raw_uploads_are_flat_field_corrected_and_say_so(
    calibrated: tuple[TestClient, Store], tmp_path: Path
) -> None:
    client, store = calibrated
    truth = render_wedges(frame=(220, WIDTH), seed=5)
    raw = raw_frame({"high": truth.high, "low": truth.low}, RESPONSE, seed=6)
    files = {"file": ("scan.tiff", two_page_tiff(raw), "image/tiff")}
    response = client.post("/api/frames", files=files)
    assert response.status_code == 201, response.text
    record = response.json()
    assert record["calibration"] == {"profile": "scanner-0001"}
    stored = store.get_frame(record["id"])
    assert stored.metadata["calibration"] == {"profile": "scanner-0001"}
    assert stored.metadata["uploaded_by"] == "olga"
    assert client.get(f"/api/frames/{record['id']}").json()["calibration"] == {
        "profile": "scanner-0001"
    }
    high = store.load_image(record["id"]).high
    assert high is not None
    error = np.abs(high.astype(float) - truth.high.astype(float)) / AIR_LEVEL
    assert np.median(error) < 0.001  # corrected: the raw frame is far off
    assert np.median(np.abs(raw["high"].astype(float) - truth.high) / AIR_LEVEL) > 0.01
    assert (tmp_path / "data" / "calibration" / "raw" / f"{record['id']}.tiff").is_file()


def test_8_bit_colour_uploads_and_other_widths_pass_uncorrected(
    calibrated: tuple[TestClient, Store],
) -> None:
    client, store = calibrated
    ok, png = cv2.imencode(".png", np.full((40, 60, 3), 90, np.uint8))
    response = client.post("/api/frames", files={"file": ("bag.png", png.tobytes(), "image/png")})
    assert response.status_code == 201, response.text
    assert response.json()["calibration"] is None
    assert "calibration" not in store.get_frame(response.json()["id"]).metadata
    # Raw channels the profile cannot correct (another detector width): screened as sent,
    # with the reason recorded on the frame.
    narrow = {k: np.full((50, 120), 30000, np.uint16) for k in ("high", "low")}
    files = {"file": ("narrow.tiff", two_page_tiff(narrow), "image/tiff")}
    record = client.post("/api/frames", files=files).json()
    assert record["calibration"]["profile"] is None
    assert "300" in record["calibration"]["reason"] or "width" in record["calibration"]["reason"]


def test_the_material_view_classifies_with_the_profiles_fitted_curves(
    calibrated: tuple[TestClient, Store], tmp_path: Path
) -> None:
    """With curves fitted at calibration the material view uses them (here a deliberately
    odd pair: every ratio below 10 is organic); the fixed thresholds would say otherwise."""
    from calibration.materials import GRID, MaterialCurves, classify
    from edge.api.views import MATERIAL_PALETTE, material_index

    client, store = calibrated
    truth = render_wedges(frame=(220, WIDTH), seed=5)
    raw = raw_frame({"high": truth.high, "low": truth.low}, RESPONSE, seed=6)
    files = {"file": ("scan.tiff", two_page_tiff(raw), "image/tiff")}
    frame_id = client.post("/api/frames", files=files).json()["id"]
    logged = store.load_image(frame_id)
    assert logged.high is not None and logged.low is not None

    def material_png() -> np.ndarray:
        response = client.get(f"/api/frames/{frame_id}/image", params={"view": "material"})
        assert response.status_code == 200
        return cv2.cvtColor(cv2.imdecode(np.frombuffer(response.content, np.uint8), 1),
                            cv2.COLOR_BGR2RGB)  # fmt: skip

    fixed = MATERIAL_PALETTE[material_index(logged.high, logged.low)]
    assert (material_png() == fixed).all()  # the profile has no curves yet
    odd = MaterialCurves(np.full(len(GRID), 10, np.float32), np.full(len(GRID), 20, np.float32), {})
    dark = [Scan(f"d{i}", dark_scan(RESPONSE, 80, seed=i)) for i in range(3)]
    air = [Scan(f"a{i}", air_scan(RESPONSE, 80, seed=9 + i)) for i in range(3)]
    profiles.save(tmp_path / "data", build_flatfield(dark, air), odd, [], {})
    expected = MATERIAL_PALETTE[classify(logged.high, logged.low, odd)]
    shown = material_png()
    assert (shown == expected).all() and not (expected == fixed).all()
