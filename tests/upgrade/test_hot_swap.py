"""A model switch while frames stream through the pipeline: none lost, none screened twice,
the old model's id before the switch and the new one's after."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from edge.detector import Detector
from edge.frames import Frame, ScreeningState
from edge.pipeline import Intake, LocalScreener, Pipeline, ScreenedFrame
from edge.upgrade.manager import ModelSwitcher

from .device import Device


def _load(path: Path) -> tuple[LocalScreener, None]:
    return LocalScreener(Detector.load(path)), None


def test_switching_models_under_load_loses_and_repeats_nothing(device: Device) -> None:
    active = device.store.active()
    assert active is not None
    pipeline = Pipeline(_load(active.path)[0], queue_frames=4)
    seen: list[ScreenedFrame] = []
    pipeline.subscribe(seen.append)
    switcher = ModelSwitcher(pipeline, device.store, _load, current=pipeline.screener,
                             loaded=active.dir_name, interval_s=0.05)  # fmt: skip
    switcher.start()
    sent: list[str] = []
    stop = threading.Event()

    def stream() -> None:
        rng = np.random.default_rng(1)
        while not stop.is_set() or len(sent) < 40:
            frame = Frame(rgb=rng.integers(0, 256, (48, 64, 3), np.uint8))
            ticket = pipeline.ingest(frame, Intake(source="test", bag=f"bag-{len(sent)}"))
            sent.append(ticket.id)
            time.sleep(0.005)

    feeder = threading.Thread(target=stream)
    feeder.start()
    try:
        time.sleep(0.3)
        device.upgrader().install(device.bundle("0.2.0", release=1))  # what `edge upgrade` does
        deadline = time.monotonic() + 30
        while pipeline.model_id != "tiny@0.2.0" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        stop.set()
        feeder.join(30)
        switcher.stop()
        pipeline.close()
    ids = [s.id for s in seen]
    assert sorted(ids) == sorted(sent) and len(set(ids)) == len(ids)
    assert all(s.result.state is ScreeningState.SCREENED for s in seen)
    models = [s.result.model for s in sorted(seen, key=lambda s: sent.index(s.id))]
    switch = models.index("tiny@0.2.0")
    assert switch > 0 and set(models[:switch]) == {"tiny@0.1.0"}
    assert set(models[switch:]) == {"tiny@0.2.0"}
