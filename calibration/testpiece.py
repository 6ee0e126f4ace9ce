"""Automatic reading of an image-quality test-piece scan (ASTM F792 style).

Four figures, each the limit of a row of elements read at their known positions
(calibration.layout): the thinnest wire seen, the thickest steel through which a wire is
still seen, the finest grating resolved, the thinnest organic sheet seen. "Seen" is the
Rose criterion: an element's contrast over the noise of its mean, at least `ROSE_K`.
A grating is resolved when its bars keep `MIN_MODULATION` of a solid block's contrast.
Every figure is read on the high-energy attenuation, as the operator's brightness is.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from calibration.layout import QualityPieceLayout, Wire, locate_plate
from edge.pseudocolor import OPAQUE_ATTENUATION, attenuation

ROSE_K = 5.0
MIN_MODULATION = 0.25
Attenuation = npt.NDArray[np.float32]


@dataclass(frozen=True)
class PassLevels:
    """What a healthy scanner must reach (config `calibration.testpiece`)."""

    max_wire_mm: float = 0.18
    min_steel_mm: float = 14.0
    max_grating_mm: float = 1.6
    max_organic_mm: float = 0.3


@dataclass(frozen=True)
class Element:
    name: str
    value: float  # mm: wire diameter, steel, bar width, sheet thickness
    score: float  # Rose CNR, or modulation for gratings
    seen: bool


@dataclass(frozen=True)
class PieceReading:
    """One check: each figure in mm (None when not even the easiest element was seen)."""

    thinnest_wire_mm: float | None
    thickest_steel_mm: float | None
    finest_grating_mm: float | None
    thinnest_organic_mm: float | None
    steps: dict[str, bool]  # wire, penetration, resolution, organic -> passed
    origin: tuple[int, int]
    elements: dict[str, list[Element]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(self.steps.values())

    def failures(self, levels: PassLevels) -> list[str]:
        """Plain sentences for the failed steps."""
        texts = {
            "wire": f"thinnest wire seen {_mm(self.thinnest_wire_mm)}, "
            f"needs {levels.max_wire_mm:g} mm or thinner",
            "penetration": f"a wire is seen through {_mm(self.thickest_steel_mm)} of steel, "
            f"needs {levels.min_steel_mm:g} mm or more",
            "resolution": f"finest grating resolved {_mm(self.finest_grating_mm)} bars, "
            f"needs {levels.max_grating_mm:g} mm or finer",
            "organic": f"thinnest organic sheet seen {_mm(self.thinnest_organic_mm)}, "
            f"needs {levels.max_organic_mm:g} mm or thinner",
        }
        return [texts[step] for step, ok in self.steps.items() if not ok]

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["passed"] = self.passed
        doc["origin"] = list(self.origin)
        return doc


def _mm(value: float | None) -> str:
    return "none" if value is None else f"{value:g} mm"


def _wire_score(a: Attenuation, ox: int, oy: int, wire: Wire, half: int) -> float:
    """Rose CNR of a wire: peak of its row-averaged profile over the background 4 to
    `half` pixels either side (clear of a penetration step's edges)."""
    x, y0, y1 = ox + wire.x, oy + wire.y0, oy + wire.y1
    band = a[y0:y1, x - half : x + half + 1]
    if float(np.median(band)) >= OPAQUE_ATTENUATION:
        return 0.0
    background = np.concatenate([band[:, : half - 3], band[:, half + 4 :]], axis=1)
    profile = band.mean(axis=0)
    peak = float(profile[half - 1 : half + 2].max()) - float(background.mean())
    noise = float(background.std()) / math.sqrt(y1 - y0)
    return peak / max(noise, 1e-9)


def _limit(elements: list[Element]) -> float | None:
    """The last element seen before the first one missed, in the row's order."""
    last = None
    for e in elements:
        if not e.seen:
            break
        last = e.value
    return last


def read_test_piece(
    high: npt.NDArray[np.uint16],
    levels: PassLevels = PassLevels(),  # noqa: B008 (frozen, immutable)
    layout: QualityPieceLayout = QualityPieceLayout(),  # noqa: B008 (frozen, immutable)
) -> PieceReading:
    """Read a calibrated high-energy channel (H, W) uint16 of a test-piece scan."""
    a = attenuation(high)
    ox, oy = locate_plate(a, layout.plate_shape, "test piece")
    wires = []
    for wire in layout.wires():
        score = _wire_score(a, ox, oy, wire, 8)
        wires.append(Element("wire", wire.diameter_mm, round(score, 2), score >= ROSE_K))
    steel = []
    for wire in layout.penetration_wires():
        score = _wire_score(a, ox, oy, wire, 8)
        steel.append(Element("penetration", wire.steel_mm, round(score, 2), score >= ROSE_K))
    gratings = _gratings(a, ox, oy, layout)
    sheets = _sheets(a, ox, oy, layout)
    wire_mm, steel_mm = _limit(wires), _limit(steel)
    grating_mm, organic_mm = _limit(gratings), _limit(sheets)
    steps = {
        "wire": wire_mm is not None and wire_mm <= levels.max_wire_mm,
        "penetration": steel_mm is not None and steel_mm >= levels.min_steel_mm,
        "resolution": grating_mm is not None and grating_mm <= levels.max_grating_mm,
        "organic": organic_mm is not None and organic_mm <= levels.max_organic_mm,
    }
    elements = {"wire": wires, "penetration": steel, "resolution": gratings, "organic": sheets}
    return PieceReading(wire_mm, steel_mm, grating_mm, organic_mm, steps, (ox, oy), elements)


def _gratings(a: Attenuation, ox: int, oy: int, layout: QualityPieceLayout) -> list[Element]:
    bx0, by0, bx1, by1 = layout.reference_block()
    block = a[oy + by0 : oy + by1, ox + bx0 + 3 : ox + bx1 - 3]
    plate = a[oy + by0 : oy + by1, ox + bx0 - 8 : ox + bx0 - 3]
    full = float(block.mean()) - float(plate.mean())
    out = []
    for g in layout.gratings():
        profile = a[oy + g.y0 : oy + g.y1, ox + g.x0 : ox + g.x1].mean(axis=0)
        phase = (np.arange(profile.size) // g.bar_px) % 2
        bars, gaps = profile[phase == 0], profile[phase == 1]
        modulation = (float(bars.mean()) - float(gaps.mean())) / max(full, 1e-6)
        out.append(
            Element("resolution", g.bar_mm, round(modulation, 3), modulation >= MIN_MODULATION)
        )
    return out


def _sheets(a: Attenuation, ox: int, oy: int, layout: QualityPieceLayout) -> list[Element]:
    out = []
    for sheet in layout.sheets():
        x0, y0, n = ox + sheet.x0, oy + sheet.y0, sheet.size
        inner = a[y0 + 1 : y0 + n - 1, x0 + 1 : x0 + n - 1]
        ring = a[y0 - 10 : y0 + n + 10, x0 - 10 : x0 + n + 10].copy()
        ring[7 : n + 13, 7 : n + 13] = np.nan  # 3 pixels clear of the sheet's edge
        background = ring[np.isfinite(ring)]
        contrast = float(inner.mean()) - float(background.mean())
        score = contrast / max(float(background.std()), 1e-9) * math.sqrt(inner.size)
        out.append(Element("organic", sheet.thickness_mm, round(score, 2), score >= ROSE_K))
    return out
