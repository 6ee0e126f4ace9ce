"""The physical calibration pieces, as their datasheets give them, and how to find them.

Both pieces sit on a 3 mm plastic carrier plate. The analysis finds the plate in the scan
(the largest region above the plate's attenuation) and reads every element at its fixed
position relative to the plate's top-left corner: the plate's corners are the fiducials,
so the piece may lie anywhere on the belt (translation only; the piece is laid square to
the belt, as its instructions say). Positions are in detector pixels (0.8 mm).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from calibration.errors import CalibrationInputError

PLATE_MATERIAL = "plastic"
PLATE_CM = 0.3
PLATE_MIN_ATTENUATION = 0.027  # half the plate's own high-energy attenuation (0.054)
LOCATE_TOLERANCE_PX = 4


@dataclass(frozen=True)
class WedgeSet:
    """Three step wedges side by side; steps run down the rows, thickest last."""

    steps: tuple[tuple[str, tuple[float, ...]], ...] = (
        ("plastic", (1.0, 2.0, 4.0, 6.0, 9.0, 12.0, 16.0, 20.0, 25.0, 29.0)),
        ("aluminium", (0.2, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.5, 8.0, 10.0)),
        ("steel", (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.55, 0.7, 1.0)),
    )  # material, thickness of each step in cm
    step_rows: int = 16
    wedge_cols: int = 60
    gap: int = 16  # plate margin around and between wedges, pixels

    @property
    def plate_shape(self) -> tuple[int, int]:
        n = max(len(t) for _, t in self.steps)
        return n * self.step_rows + 2 * self.gap, len(self.steps) * (
            self.wedge_cols + self.gap
        ) + self.gap

    def step_box(self, wedge: int, step: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of one step relative to the plate corner, pixels."""
        x0 = self.gap + wedge * (self.wedge_cols + self.gap)
        y0 = self.gap + step * self.step_rows
        return x0, y0, x0 + self.wedge_cols, y0 + self.step_rows


@dataclass(frozen=True)
class Wire:
    x: int  # column of the wire's axis, relative to the plate
    y0: int
    y1: int
    diameter_mm: float
    steel_mm: float = 0.0  # steel step the wire lies on (penetration)


@dataclass(frozen=True)
class Grating:
    x0: int  # first bar's left column
    y0: int
    y1: int
    bar_px: int  # bar width = gap width, pixels
    bars: int = 5

    @property
    def bar_mm(self) -> float:
        return self.bar_px * 0.8

    @property
    def x1(self) -> int:
        return self.x0 + (2 * self.bars - 1) * self.bar_px


@dataclass(frozen=True)
class Sheet:
    x0: int
    y0: int
    size: int
    thickness_mm: float


WIRE_MATERIAL = "copper"
STEP_MATERIAL = "steel"
GRATING_MATERIAL = "steel"
GRATING_MM = 2.0
SHEET_MATERIAL = "plastic"


@dataclass(frozen=True)
class QualityPieceLayout:
    """An ASTM F792-style image-quality piece on a 200 x 356 pixel plate."""

    plate_shape: tuple[int, int] = (200, 356)
    wire_mm: tuple[float, ...] = (0.7, 0.35, 0.18, 0.09, 0.045)
    steel_steps_mm: tuple[float, ...] = (6.0, 10.0, 14.0, 17.0, 20.0)
    penetration_wire_mm: float = 0.64
    step_cols: int = 26
    bar_px: tuple[int, ...] = (5, 4, 3, 2)
    sheet_mm: tuple[float, ...] = (2.7, 0.9, 0.3, 0.1)
    sheet_px: int = 10

    def wires(self) -> list[Wire]:
        """Resolution wires on the bare plate, thickest first."""
        return [Wire(24 + 18 * i, 12, 72, d) for i, d in enumerate(self.wire_mm)]

    def steps(self) -> list[tuple[int, int, int, int, float]]:
        """Penetration steel steps: (x0, y0, x1, y1, steel mm), thinnest first."""
        return [
            (12 + i * self.step_cols, 84, 12 + (i + 1) * self.step_cols, 144, t)
            for i, t in enumerate(self.steel_steps_mm)
        ]

    def penetration_wires(self) -> list[Wire]:
        return [
            Wire((x0 + x1) // 2, y0 + 5, y1 - 5, self.penetration_wire_mm, t)
            for x0, y0, x1, y1, t in self.steps()
        ]

    def reference_block(self) -> tuple[int, int, int, int]:
        """A solid block of the gratings' steel: the full contrast a grating's bars reach."""
        return 160, 84, 174, 144

    def gratings(self) -> list[Grating]:
        out, x = [], 184
        for w in self.bar_px:
            g = Grating(x, 84, 144, w)
            out.append(g)
            x = g.x1 + 10
        return out

    def sheets(self) -> list[Sheet]:
        return [Sheet(20 + 26 * i, 160, self.sheet_px, t) for i, t in enumerate(self.sheet_mm)]


def locate_plate(
    a_high: npt.NDArray[np.float32], expected: tuple[int, int], what: str
) -> tuple[int, int]:
    """(x0, y0) of the carrier plate's top-left corner in the frame, pixels.

    CalibrationInputError when no plate of the expected (rows, cols) size is in the scan.
    """
    smooth = cv2.blur(a_high, (5, 5))
    mask = (smooth > PLATE_MIN_ATTENUATION).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
    if count < 2:
        raise CalibrationInputError(f"no {what} found in the scan (nothing on the belt)")
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    plate = labels == best
    # Rows and columns mostly covered: a stray noisy pixel beside an edge moves nothing.
    ys = np.flatnonzero(plate.sum(axis=1) > plate.sum(axis=1).max() / 2)
    xs = np.flatnonzero(plate.sum(axis=0) > plate.sum(axis=0).max() / 2)
    x, y, w, h = int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)
    rows, cols = expected
    if abs(h - rows) > LOCATE_TOLERANCE_PX or abs(w - cols) > LOCATE_TOLERANCE_PX:
        raise CalibrationInputError(
            f"no {what} found in the scan: expected a plate of {cols} x {rows} pixels, "
            f"the largest object is {w} x {h}; lay the piece flat and square on the belt, "
            "away from other objects"
        )
    return x + (w - cols) // 2, y + (h - rows) // 2
