"""Calibration pieces on the belt: the step-wedge set and the image-quality test piece.

Attenuation is computed analytically (a wire's chord through each pixel column, bars and
steps on the pixel grid) rather than drawn, so sub-pixel wires have exactly their physical
contrast; acquisition goes through `edge.sim.quality` so the scanner can be degraded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from calibration.layout import (
    GRATING_MATERIAL,
    GRATING_MM,
    PLATE_CM,
    PLATE_MATERIAL,
    SHEET_MATERIAL,
    STEP_MATERIAL,
    WIRE_MATERIAL,
    QualityPieceLayout,
    WedgeSet,
)
from edge.sim.materials import MATERIALS, PIXEL_MM
from edge.sim.quality import HEALTHY, ScannerQuality, acquire

Channel = npt.NDArray[np.uint16]


class _Belt:
    """Noise-free attenuation maps (H, W) at both energies."""

    def __init__(self, height: int, width: int) -> None:
        self.a_high = np.zeros((height, width), np.float32)
        self.a_low = np.zeros((height, width), np.float32)

    def add(self, material: str, ys: slice, xs: slice, thickness_cm: npt.ArrayLike) -> None:
        m = MATERIALS[material]
        t = np.asarray(thickness_cm, np.float32)
        self.a_high[ys, xs] += np.float32(m.mu_high) * t
        self.a_low[ys, xs] += np.float32(m.mu_low) * t

    def box(self, material: str, x0: int, y0: int, x1: int, y1: int, thickness_cm: float) -> None:
        self.add(material, slice(y0, y1), slice(x0, x1), thickness_cm)

    def wire(self, material: str, x: int, y0: int, y1: int, diameter_mm: float) -> None:
        """A round wire along the rows, its axis at the centre of column x."""
        cols = np.arange(x - 2, x + 3)
        sub = (np.arange(64) + 0.5) / 64
        pos = (cols[:, None] + sub[None, :] - (x + 0.5)) * PIXEL_MM  # mm from the axis
        r = diameter_mm / 2
        chord_mm = 2 * np.sqrt(np.clip(r * r - pos * pos, 0, None))
        mean_cm = chord_mm.mean(axis=1) / 10.0
        self.add(material, slice(y0, y1), slice(x - 2, x + 3), mean_cm[None, :])


@dataclass(frozen=True)
class PieceScan:
    high: Channel
    low: Channel
    origin: tuple[int, int]  # (x0, y0) of the plate in the frame, pixels


def render_wedges(
    origin: tuple[int, int] = (28, 20),
    frame: tuple[int, int] = (220, 300),
    *,
    quality: ScannerQuality = HEALTHY,
    seed: int = 0,
    wedges: WedgeSet = WedgeSet(),  # noqa: B008 (frozen, immutable)
) -> PieceScan:
    """A scan of the step-wedge set with its plate corner at `origin` in a (rows, cols) frame."""
    belt = _Belt(*frame)
    x0, y0 = origin
    rows, cols = wedges.plate_shape
    belt.box(PLATE_MATERIAL, x0, y0, x0 + cols, y0 + rows, PLATE_CM)
    for w, (material, thicknesses) in enumerate(wedges.steps):
        for s, t in enumerate(thicknesses):
            bx0, by0, bx1, by1 = wedges.step_box(w, s)
            belt.box(material, x0 + bx0, y0 + by0, x0 + bx1, y0 + by1, t)
    high, low = acquire(belt.a_high, belt.a_low, quality, seed)
    return PieceScan(high, low, origin)


def render_test_piece(
    origin: tuple[int, int] = (30, 20),
    frame: tuple[int, int] = (240, 400),
    *,
    quality: ScannerQuality = HEALTHY,
    seed: int = 0,
    layout: QualityPieceLayout = QualityPieceLayout(),  # noqa: B008 (frozen, immutable)
) -> PieceScan:
    """A scan of the image-quality test piece with its plate corner at `origin`."""
    belt = _Belt(*frame)
    x0, y0 = origin
    rows, cols = layout.plate_shape
    belt.box(PLATE_MATERIAL, x0, y0, x0 + cols, y0 + rows, PLATE_CM)
    for wire in layout.wires():
        belt.wire(WIRE_MATERIAL, x0 + wire.x, y0 + wire.y0, y0 + wire.y1, wire.diameter_mm)
    for sx0, sy0, sx1, sy1, steel_mm in layout.steps():
        belt.box(STEP_MATERIAL, x0 + sx0, y0 + sy0, x0 + sx1, y0 + sy1, steel_mm / 10)
    for wire in layout.penetration_wires():
        belt.wire(WIRE_MATERIAL, x0 + wire.x, y0 + wire.y0, y0 + wire.y1, wire.diameter_mm)
    bx0, by0, bx1, by1 = layout.reference_block()
    belt.box(GRATING_MATERIAL, x0 + bx0, y0 + by0, x0 + bx1, y0 + by1, GRATING_MM / 10)
    for g in layout.gratings():
        for b in range(g.bars):
            gx = x0 + g.x0 + 2 * b * g.bar_px
            belt.box(GRATING_MATERIAL, gx, y0 + g.y0, gx + g.bar_px, y0 + g.y1, GRATING_MM / 10)
    for sheet in layout.sheets():
        sx, sy = x0 + sheet.x0, y0 + sheet.y0
        belt.box(SHEET_MATERIAL, sx, sy, sx + sheet.size, sy + sheet.size, sheet.thickness_mm / 10)
    high, low = acquire(belt.a_high, belt.a_low, quality, seed)
    return PieceScan(high, low, origin)
