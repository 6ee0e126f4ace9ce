"""Simulated calibration scans written as the scanner would: two-page 16-bit TIFFs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.sim.pieces import render_wedges
from edge.sim.raw import DetectorResponse, air_scan, dark_scan, raw_frame

WIDTH, ROWS = 300, 120


def write_tiff(path: Path, channels: dict[str, np.ndarray]) -> Path:
    assert cv2.imwritemulti(str(path), [np.ascontiguousarray(c) for c in channels.values()])
    return path


def write_scans(
    folder: Path, response: DetectorResponse, *, hours: float = 0.0, count: int = 4
) -> tuple[list[str], list[str]]:
    """`count` dark and air scans; returns their paths (dark, air)."""
    folder.mkdir(parents=True, exist_ok=True)
    dark = [
        str(write_tiff(folder / f"dark{i}.tiff", dark_scan(response, ROWS, hours=hours, seed=i)))
        for i in range(count)
    ]
    air = [
        str(write_tiff(folder / f"air{i}.tiff", air_scan(response, ROWS, hours=hours, seed=50 + i)))
        for i in range(count)
    ]
    return dark, air


def write_wedges(folder: Path, response: DetectorResponse, count: int = 4) -> list[str]:
    """Raw scans of the step-wedge set at a few places on the belt."""
    paths = []
    for i in range(count):
        scan = render_wedges((20 + 4 * i, 12 + 3 * i), (220, WIDTH), seed=100 + i)
        raw = raw_frame({"high": scan.high, "low": scan.low}, response, seed=200 + i)
        paths.append(str(write_tiff(folder / f"wedge{i}.tiff", raw)))
    return paths
