"""Fixtures for the image log tests: small deterministic frames and stores that close."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.frames import Detections, Frame, Result, ScreeningState
from edge.store import Store


def dual_frame(seed: int, shape: tuple[int, int] = (24, 32)) -> Frame:
    """Random (incompressible) dual-energy channels, the same for the same seed."""
    rng = np.random.default_rng(seed)
    high = rng.integers(0, 65536, shape, dtype=np.uint16)
    low = rng.integers(0, 65536, shape, dtype=np.uint16)
    return Frame(high=high, low=low)


def rgb_frame(seed: int, shape: tuple[int, int] = (24, 32)) -> Frame:
    rng = np.random.default_rng(seed)
    return Frame(rgb=rng.integers(0, 256, (*shape, 3), dtype=np.uint8))


def screened(alarm: bool, model: str = "tiny@0.1.0") -> Result:
    """A SCREENED result with one gun box when `alarm`, none otherwise."""
    if not alarm:
        return Result(ScreeningState.SCREENED, Detections.empty(), model)
    boxes = np.array([[2.0, 3.0, 12.5, 20.0]], np.float32)
    return Result(
        ScreeningState.SCREENED,
        Detections(boxes, np.array([0.91], np.float32), np.array([0])),
        model,
        timings_ms={"infer": 12.5},
    )


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[Callable[..., Store]]:
    """Factory: Store(tmp_path / "data", **options); every store it opened is closed after."""
    opened: list[Store] = []

    def make(data_dir: Path | None = None, **options: Any) -> Store:
        store = Store(data_dir or tmp_path / "data", **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
