from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import gather_failure_model

from edge.config import DEFAULT_MODEL_DIR
from edge.detector import Detector
from edge.frames import Frame, Result, ScreeningState
from edge.pipeline import Intake, LocalScreener, Pipeline, UnknownFrameError
from edge.pseudocolor import render_pseudocolor
from edge.service import load_detector
from edge.sim.scene import simulate_bag

MakeDir = Callable[..., Path]


@pytest.fixture(scope="module")
def demo_detector() -> Detector:
    return Detector.load(DEFAULT_MODEL_DIR)


def sim_frame(seed: int, **kwargs: Any) -> Frame:
    bag = simulate_bag(seed, **kwargs)
    return Frame(high=bag.high, low=bag.low)


def rgb_frame(value: int = 0, size: tuple[int, int] = (30, 40)) -> Frame:
    return Frame(rgb=np.full((*size, 3), value, np.uint8))


def dual_energy(manifest: dict[str, Any]) -> None:
    manifest["input"].update(representation="dual_energy", scale=None)


def test_demo_model_screens_a_simulated_threat_bag(demo_detector: Detector) -> None:
    service = Pipeline(LocalScreener(demo_detector))
    bag = simulate_bag(7, threats=["gun"], clutter="low")
    frame = Frame(high=bag.high, low=bag.low)

    screened = service.submit(frame, source="test", bag="bag-7")

    assert screened.id == "f-000001"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", screened.received)
    assert screened.result.state is ScreeningState.SCREENED
    assert screened.result.model == "demo-xray-det@1.0.0"
    assert screened.result.alarm is (len(screened.result.detections) > 0)
    assert screened.shape == bag.high.shape
    np.testing.assert_array_equal(screened.rgb, render_pseudocolor(bag.high, bag.low))
    record = screened.to_dict()
    assert record["state"] == "SCREENED"
    assert (record["width"], record["height"]) == (bag.high.shape[1], bag.high.shape[0])
    assert set(record["timings_ms"]) == {"preprocess", "inference", "postprocess"}
    for detection in record["detections"]:
        assert detection["class"] in demo_detector.class_names
        x1, y1, x2, y2 = detection["box"]
        assert 0 <= x1 < x2 <= record["width"] and 0 <= y1 < y2 <= record["height"]
    assert service.degraded() == []


def test_without_a_model_every_frame_is_not_screened() -> None:
    service = Pipeline(None)
    screened = service.submit(rgb_frame(), source="test", bag="b1")
    assert screened.result.state is ScreeningState.NOT_SCREENED
    assert screened.result.reason == "no model loaded"
    assert screened.result.alarm is None
    assert screened.to_dict()["model"] is None
    assert service.degraded() == [
        "no model loaded",
        "last frame f-000001 NOT SCREENED: no model loaded",
    ]


def test_a_refused_model_says_why(tmp_path: Path) -> None:
    detector, error = load_detector(tmp_path / "missing")
    assert detector is None
    assert error is not None and str(tmp_path / "missing") in error
    service = Pipeline(detector, model_error=error)
    reason = service.submit(rgb_frame(), source="test", bag="b1").result.reason
    assert reason == f"no model loaded: {error}"


def test_a_frame_the_model_cannot_take_is_not_screened(tiny_model_dir: MakeDir) -> None:
    service = Pipeline(LocalScreener(Detector.load(tiny_model_dir(edit=dual_energy))))
    screened = service.submit(rgb_frame(), source="upload", bag="b1")
    assert screened.result.state is ScreeningState.NOT_SCREENED
    assert screened.result.reason == (
        "frame: model tiny@0.1.0 needs dual-energy high and low channels, got an RGB-only frame"
    )
    assert screened.result.model == "tiny@0.1.0"
    # The same model screens a dual-energy frame.
    assert service.submit(sim_frame(1), source="test", bag="b2").result.alarm is False


def test_an_inference_failure_is_not_screened(tiny_model_dir: MakeDir) -> None:
    service = Pipeline(
        LocalScreener(Detector.load(tiny_model_dir(model=gather_failure_model(2.0))))
    )
    assert service.submit(rgb_frame(0), source="test", bag="dark").result.alarm is False
    failed = service.submit(rgb_frame(255), source="test", bag="white")
    assert failed.result.state is ScreeningState.NOT_SCREENED
    assert failed.result.reason is not None
    assert failed.result.reason.startswith("inference failed in model tiny@0.1.0")
    assert len(failed.result.detections) == 0
    assert service.degraded() == [f"last frame f-000002 NOT SCREENED: {failed.result.reason}"]


def test_counters_add_up(tiny_model_dir: MakeDir) -> None:
    # One box of class 0 with score 0.9 on every frame: each screened frame alarms.
    alarm_outputs = [np.array([[[32.0], [32.0], [10.0], [10.0], [0.9], [0], [0], [0]]], np.float32)]
    alarming = Pipeline(LocalScreener(Detector.load(tiny_model_dir(alarm_outputs))))
    for _ in range(3):
        alarming.submit(rgb_frame(), source="test", bag="b")
    c = alarming.counters
    assert (c.frames_in, c.screened, c.not_screened, c.alarms) == (3, 3, 0, 3)
    assert c.last_latency_ms is not None and c.last_latency_ms > 0

    failing = Pipeline(
        LocalScreener(Detector.load(tiny_model_dir(model=gather_failure_model(2.0))))
    )
    for value in (0, 255, 0, 255, 255):
        failing.submit(rgb_frame(value), source="test", bag="b")
    c = failing.counters
    assert (c.frames_in, c.screened, c.not_screened, c.alarms) == (5, 2, 3, 0)


def test_the_ring_keeps_the_newest_frames() -> None:
    service = Pipeline(None, history=3)
    for i in range(5):
        service.submit(rgb_frame(), source="test", bag=f"b{i}")
    assert [f.id for f in service.recent()] == ["f-000005", "f-000004", "f-000003"]
    assert [f.bag for f in service.recent(2)] == ["b4", "b3"]
    assert service.latest().id == "f-000005"
    assert service.get("f-000003").bag == "b2"
    with pytest.raises(UnknownFrameError, match="'f-000002' is unknown or no longer held"):
        service.get("f-000002")
    assert service.counters.frames_in == 5


def test_latest_before_any_frame_is_unknown() -> None:
    with pytest.raises(UnknownFrameError, match="no frame has been received yet"):
        Pipeline(None).latest()


def test_concurrent_submits_get_unique_ids() -> None:
    service = Pipeline(None, history=100)

    def submit_many() -> None:
        for _ in range(20):
            service.submit(rgb_frame(), source="test", bag="b")

    threads = [threading.Thread(target=submit_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({f.id for f in service.recent()}) == 80
    assert service.counters.frames_in == service.counters.not_screened == 80


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_full_disk_degrades_logging_but_screening_goes_on(
    tmp_path: Path, tiny_model_dir: MakeDir
) -> None:
    from edge.store import Store

    alarm = np.zeros((1, 8, 4), np.float32)
    alarm[0, :4, 0] = [32, 32, 16, 16]
    alarm[0, 5, 0] = 0.9
    store = Store(tmp_path / "data", capacity_bytes=40_000)  # room for about one frame
    service = Pipeline(LocalScreener(Detector.load(tiny_model_dir([alarm]))), store=store)
    tickets = [
        service.ingest(rgb_frame(value=v, size=(100, 120)), Intake(source="test", bag=f"b{v}"))
        for v in (10, 20, 30)
    ]
    screened = [t.screened.result(30) for t in tickets]
    service.close()
    assert tickets[0].durable and not tickets[-1].durable
    assert "No space left" in (tickets[-1].not_logged_reason or "")
    assert all(s.result.alarm is True for s in screened)  # screened all the same
    assert screened[0].logged and not screened[-1].logged
    assert store.health()["logging"] == "degraded"
    assert any("logging degraded" in reason for reason in service.degraded())
    assert service.counters.not_logged >= 1
    store.close()


def test_ingest_blocks_when_the_queue_is_full() -> None:
    release = threading.Event()

    class SlowScreener:
        """A screener that holds each frame until released (a slow model)."""

        model_id, model_sha256, class_names = "slow@1", "0" * 64, ["gun"]

        def screen(self, frame: Frame) -> Result:
            release.wait(10)
            return Result.not_screened("released")

        def close(self) -> None:
            """Nothing to release."""

    service = Pipeline(SlowScreener(), queue_frames=1)
    done = threading.Event()

    def feed() -> None:
        for v in range(4):  # 1 screening + 1 queued, then ingest must wait
            service.ingest(rgb_frame(value=v), Intake(source="test"))
        done.set()

    threading.Thread(target=feed, daemon=True).start()
    assert not done.wait(1.0), "ingest did not block on a full queue"
    release.set()
    assert done.wait(10)
    service.close()
