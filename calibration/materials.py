"""Material curves from step-wedge scans: where organic ends and metal begins, as a
function of high-energy attenuation.

For each wedge material the curve is its measured ratio R = A_low / A_high against A_high
(one point per step, the step's median). The organic/inorganic boundary is midway between
the plastic and aluminium curves, the inorganic/metal boundary midway between aluminium
and steel, both tabulated on a fixed A_high grid. Classification smooths both attenuations
over 3 x 3 pixels first (the low channel is noisy where little passes). Pixels where a
channel carries no usable signal are impenetrable and not classified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from calibration.errors import CalibrationInputError
from calibration.layout import WedgeSet, locate_plate
from edge.pseudocolor import OPAQUE_ATTENUATION, attenuation, material_classes

CLASS_OF = {"plastic": 1, "aluminium": 2, "steel": 3}  # organic, inorganic, metal
CLASS_NAMES = {1: "organic", 2: "inorganic", 3: "metal"}
LOW_OPAQUE_ATTENUATION = 6.5  # the low channel's own noise floor (~90 counts of 60,000)
BACKGROUND_ATTENUATION = 0.05
GRID = np.round(np.arange(0.0, OPAQUE_ATTENUATION + 1e-6, 0.05), 3)
EDGE_PX = 3  # a step's pixels this close to its edge are not used (blur, smoothing)
Channel = npt.NDArray[np.uint16]
Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class MaterialCurves:
    """Boundaries on `GRID` (A_high): ratio below `organic_max` is organic, at or above
    `metal_min` metal; `points`: the measured (A_high, R) per wedge material."""

    organic_max: Floats
    metal_min: Floats
    points: dict[str, list[tuple[float, float]]]

    def as_json(self) -> dict[str, Any]:
        return {
            "a_high": [float(a) for a in GRID],
            "organic_max": [round(float(v), 4) for v in self.organic_max],
            "metal_min": [round(float(v), 4) for v in self.metal_min],
            "points": {
                m: [[round(a, 4), round(r, 4)] for a, r in p] for m, p in self.points.items()
            },
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> MaterialCurves:
        return cls(
            np.asarray(doc["organic_max"], np.float32),
            np.asarray(doc["metal_min"], np.float32),
            {m: [(float(a), float(r)) for a, r in p] for m, p in doc["points"].items()},
        )


def _smoothed(channel: Channel) -> Floats:
    out = cv2.blur(attenuation(channel), (3, 3))
    return np.asarray(out, np.float32)


# The boundaries are looked up on a fine grid of A_high (steps of ~0.0013, far below the
# curves' own 0.05) rather than interpolated per pixel: np.interp over a whole frame was
# most of the material view's time.
_FINE_BINS = 4096
_FINE_GRID = np.linspace(0.0, float(GRID[-1]), _FINE_BINS)


def _boundary(a_high: Floats, curve: Floats) -> Floats:
    table = np.interp(_FINE_GRID, GRID, curve).astype(np.float32)
    index = np.clip(a_high * np.float32((_FINE_BINS - 1) / GRID[-1]) + 0.5, 0, _FINE_BINS - 1)
    out: Floats = np.take(table, index.astype(np.intp))
    return out


def classify(high: Channel, low: Channel, curves: MaterialCurves) -> npt.NDArray[np.uint8]:
    """(H, W) uint8 map with material_classes' codes: 0 background, 1 organic,
    2 inorganic, 3 metal, 4 impenetrable."""
    a_high, a_low = _smoothed(high), _smoothed(low)
    ratio = a_low / np.maximum(a_high, np.float32(0.02))
    b1 = _boundary(a_high, curves.organic_max)
    b2 = _boundary(a_high, curves.metal_min)
    out = np.where(ratio < b1, 1, np.where(ratio < b2, 2, 3)).astype(np.uint8)
    out[a_high < BACKGROUND_ATTENUATION] = 0
    out[(a_high >= OPAQUE_ATTENUATION) | (a_low >= LOW_OPAQUE_ATTENUATION)] = 4
    return out


@dataclass(frozen=True)
class WedgeScan:
    name: str
    high: Channel
    low: Channel


def _steps(scan: WedgeScan, wedges: WedgeSet) -> list[tuple[str, tuple[slice, slice]]]:
    """(material, (rows, cols)) of every step's interior in the frame."""
    ox, oy = locate_plate(
        attenuation(scan.high), wedges.plate_shape, f"step-wedge set ({scan.name})"
    )
    out = []
    for w, (material, thicknesses) in enumerate(wedges.steps):
        for s in range(len(thicknesses)):
            x0, y0, x1, y1 = wedges.step_box(w, s)
            rows = slice(oy + y0 + EDGE_PX, oy + y1 - EDGE_PX)
            out.append((material, (rows, slice(ox + x0 + EDGE_PX, ox + x1 - EDGE_PX))))
    return out


def fit_curves(scans: Sequence[WedgeScan], wedges: WedgeSet = WedgeSet()) -> MaterialCurves:  # noqa: B008
    """Curves from calibrated wedge scans (step medians pooled over the scans)."""
    if not scans:
        raise CalibrationInputError("need at least one step-wedge scan to fit material curves")
    points: dict[str, list[tuple[float, float]]] = {m: [] for m, _ in wedges.steps}
    for scan in scans:
        a_high, a_low = _smoothed(scan.high), _smoothed(scan.low)
        for material, box in _steps(scan, wedges):
            h, lo = a_high[box], a_low[box]
            usable = (h < OPAQUE_ATTENUATION) & (lo < LOW_OPAQUE_ATTENUATION)
            if usable.mean() < 0.5:
                continue
            points[material].append(
                (float(np.median(h[usable])), float(np.median(lo[usable] / h[usable])))
            )
    for material, pts in points.items():
        if len(pts) < 2:
            raise CalibrationInputError(
                f"step-wedge scan: fewer than 2 usable {material} steps; is the wedge set "
                "on the belt and the tube on?"
            )
        pts.sort()

    def curve(material: str) -> npt.NDArray[np.float64]:
        a, r = zip(*points[material], strict=True)
        return np.asarray(np.interp(GRID, a, r), np.float64)

    plastic, alu, steel = curve("plastic"), curve("aluminium"), curve("steel")
    return MaterialCurves(
        ((plastic + alu) / 2).astype(np.float32), ((alu + steel) / 2).astype(np.float32), points
    )


def accuracy(
    scans: Sequence[WedgeScan],
    curves: MaterialCurves | None,
    wedges: WedgeSet = WedgeSet(),  # noqa: B008
) -> dict[str, dict[str, float]]:
    """Per wedge material: share of its penetrable step pixels classified right, and the
    share excluded as impenetrable. `curves` None: the renderer's fixed thresholds."""
    right: dict[str, int] = {m: 0 for m, _ in wedges.steps}
    total = dict.fromkeys(right, 0)
    opaque = dict.fromkeys(right, 0)
    for scan in scans:
        if curves is None:
            classes = material_classes(scan.high, scan.low)
        else:
            classes = classify(scan.high, scan.low, curves)
        for material, box in _steps(scan, wedges):
            c = classes[box]
            penetrable = (c != 4) & (c != 0)
            opaque[material] += int((~penetrable).sum())
            total[material] += int(penetrable.sum())
            right[material] += int((c[penetrable] == CLASS_OF[material]).sum())
    return {
        m: {
            "accuracy": round(right[m] / total[m], 4) if total[m] else float("nan"),
            "pixels": total[m],
            "impenetrable_share": round(opaque[m] / max(opaque[m] + total[m], 1), 4),
        }
        for m in right
    }
