"""The standard regression suite's bags: every threat class x clutter x occlusion x rotation
x size cell, and as many clean bags.

Cells are visited in an order that keeps every prefix balanced (so a small --count still
spreads over every value of every dimension): cell i takes (class, rotation, clutter) from
i mod 60 by the Chinese remainder theorem (5, 4 and 3 are coprime) and (occlusion, size)
from (i + i // 60) mod 9, which runs through all 9 pairs as i // 60 does (7 is coprime
with 9), pairs ordered so that any 3 in a row differ in both. A bag is rendered with its cell's clutter, rotation, size and occluder forced
(ThreatControl); occlusion and size are then measured as for any bag, and a bag whose
measured cell differs is drawn again with the next seed, up to MAX_ATTEMPTS times.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.pseudocolor import render_pseudocolor
from edge.sim.dataset import coco_categories, frame_record
from edge.sim.scene import SimFrame, ThreatControl, simulate_bag
from edge.sim.shapes import CLASSES

CLUTTER_LEVELS = ("low", "medium", "high")
OCCLUSIONS = ("none", "partial", "heavy")
ROTATIONS = ("0", "45", "90", "135")
SIZES = ("small", "medium", "large")
CELL_COUNT = len(CLASSES) * len(CLUTTER_LEVELS) * len(OCCLUSIONS) * len(ROTATIONS) * len(SIZES)
STANDARD_COUNT = 2 * CELL_COUNT  # one threat bag per cell, as many clean bags
STANDARD_SEED = 20_000_000  # training draws from 1,000,000 up, evaluation 8-9,000,000
MAX_ATTEMPTS = 16
# Long side (px) ranges drawn for each size bucket (the scene's rule: < 100, < 200, else).
SIZE_RANGES = {"small": (55.0, 88.0), "medium": (115.0, 185.0), "large": (215.0, 300.0)}


@dataclass(frozen=True)
class Cell:
    threat: str
    clutter: str
    occluded: str
    rotation: str
    size: str

    @classmethod
    def of(cls, frame: SimFrame) -> Cell | None:
        """The cell a rendered bag landed in (its first threat), None for a clean bag."""
        if not frame.annotations:
            return None
        first = frame.annotations[0]
        a = first.attributes
        return cls(
            first.label, frame.attributes["clutter"], a["occluded"], a["rotation"], a["size"]
        )


def all_cells() -> list[Cell]:
    return [
        Cell(*values)
        for values in itertools.product(CLASSES, CLUTTER_LEVELS, OCCLUSIONS, ROTATIONS, SIZES)
    ]


def cell_order() -> list[Cell]:
    """Every cell once, each prefix balanced over every dimension (see the module doc)."""
    n_class, n_rot, n_clutter = len(CLASSES), len(ROTATIONS), len(CLUTTER_LEVELS)
    block = n_class * n_rot * n_clutter
    # (occlusion, size) pair k = (k mod 3, (k + k // 3) mod 3): all 9 pairs, and any 3 in a
    # row hold each occlusion and each size once.
    pairs = [(OCCLUSIONS[k % 3], SIZES[(k + k // 3) % 3]) for k in range(9)]
    assert len(set(pairs)) == len(OCCLUSIONS) * len(SIZES) == 9
    assert block * len(pairs) == CELL_COUNT
    cells = []
    for i in range(CELL_COUNT):
        r = i % block
        occluded, size = pairs[(i + i // block) % len(pairs)]
        cells.append(
            Cell(
                CLASSES[r % n_class],
                CLUTTER_LEVELS[r % n_clutter],
                occluded,
                ROTATIONS[r % n_rot],
                size,
            )
        )
    return cells


def plan(count: int) -> list[Cell | None]:
    """What bag k of `count` should be: threat bags (even k) walk cell_order(), clean bags
    (odd k, None) fill the rest; ceil(count / 2) threat bags."""
    order = cell_order()
    return [order[(k // 2) % CELL_COUNT] if k % 2 == 0 else None for k in range(count)]


def _bag_kind(clutter: str, rng: np.random.Generator) -> str | None:
    # A tray never holds high clutter (the scene downgrades it): pick a bag that can.
    return str(rng.choice(["suitcase", "softbag"])) if clutter == "high" else None


def render_cell(cell: Cell, seed: int) -> tuple[SimFrame, int]:
    """A bag in `cell`: (frame, attempts). Seeds seed, seed + 1, ... are tried; after
    MAX_ATTEMPTS the last bag is kept (Cell.of tells where it landed)."""
    frame: SimFrame | None = None
    for attempt in range(MAX_ATTEMPTS):
        rng = np.random.default_rng([seed, attempt, 7])
        low, high = SIZE_RANGES[cell.size]
        long_side = float(rng.uniform(low, high))
        angle = float(cell.rotation) + float(rng.uniform(-15, 15)) + 180.0 * int(rng.integers(2))
        if cell.occluded == "heavy":
            control = ThreatControl(
                angle, long_side, "plate", float(rng.uniform(0, 0.08)) * long_side, 1.2 * long_side
            )
        elif cell.occluded == "partial":
            control = ThreatControl(angle, long_side, "plate", 0.3 * long_side, 0.55 * long_side)
        else:
            control = ThreatControl(angle, long_side)
        frame = simulate_bag(
            seed + attempt,
            threats=[cell.threat],
            clutter=cell.clutter,
            bag=_bag_kind(cell.clutter, rng),
            occlude=cell.occluded != "none",
            control=control,
        )
        if Cell.of(frame) == cell:
            return frame, attempt + 1
    assert frame is not None
    return frame, MAX_ATTEMPTS


def render_clean(k: int, seed: int) -> SimFrame:
    clutter = CLUTTER_LEVELS[(k // 2) % len(CLUTTER_LEVELS)]
    rng = np.random.default_rng([seed, 11])
    return simulate_bag(seed, threats=[], clutter=clutter, bag=_bag_kind(clutter, rng))


@dataclass
class StandardDataset:
    """What write_standard_dataset wrote: counts, file hashes (relative to the data set
    folder), and the planned cells no bag landed in."""

    images: int = 0
    threat_images: int = 0
    attempts: int = 0
    files: dict[str, str] = field(default_factory=dict)
    covered: set[Cell] = field(default_factory=set)
    missed: list[Cell] = field(default_factory=list)

    def uncovered(self) -> list[Cell]:
        """Cells of the whole grid no bag landed in (with fewer than STANDARD_COUNT bags,
        the cells the plan never reached are among them)."""
        return [c for c in all_cells() if c not in self.covered]


def _write_png(folder: Path, rel: str, pixels: Any, files: dict[str, str]) -> None:
    # These files are written once and read at every test, on the cores the model runs on,
    # so they are made quick to decode (edge/ingest/png_quick.py): one fixed row filter
    # instead of libpng's choice per row. The 8-bit pseudo-colour: no filter, deflate level 3
    # (three 1000-wide images: 581 KB and 6.2 ms to decode, 52 ms to write; level 1 668 KB,
    # 7.4 ms, 29 ms; libpng's per-row choice at level 1 made ~1 MB that took 17 ms). The
    # 16-bit planes: the up filter at level 1 (noisy, they hardly shrink at higher levels).
    sixteen = pixels.dtype == np.uint16
    level, row_filter = (
        (1, cv2.IMWRITE_PNG_FILTER_UP) if sixteen else (3, cv2.IMWRITE_PNG_FILTER_NONE)
    )
    params = [cv2.IMWRITE_PNG_COMPRESSION, level, cv2.IMWRITE_PNG_FILTER, row_filter]
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(pixels), params)
    if not ok:
        raise OSError(f"PNG encoding failed for {rel}")
    data = buffer.tobytes()
    (folder / rel).write_bytes(data)
    files[rel] = hashlib.sha256(data).hexdigest()


def write_frames(
    folder: Path,
    frames: Iterable[SimFrame],
    info: dict[str, Any],
    progress: Callable[[int], None] | None = None,
) -> dict[str, str]:
    """Simulated frames as a COCO data set in `folder`: annotations.json, images/NNNNNN.png
    (pseudo-colour) and images/NNNNNN_{high,low}.png (16-bit). Returns each file's SHA-256
    by path relative to `folder`."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for k, frame in enumerate(frames):
        record, anns = frame_record(frame, k + 1, f"{k + 1:06d}")
        images.append(record)
        annotations.extend(anns)
        rgb = render_pseudocolor(frame.high, frame.low)
        _write_png(folder, record["file_name"], cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), files)
        _write_png(folder, record["dual_energy"]["high"], frame.high, files)
        _write_png(folder, record["dual_energy"]["low"], frame.low, files)
        if progress is not None:
            progress(k + 1)
    for number, ann in enumerate(annotations, start=1):
        ann["id"] = number
    doc = {"info": info, "images": images, "annotations": annotations}
    doc["categories"] = coco_categories()
    data = (json.dumps(doc) + "\n").encode()
    (folder / "annotations.json").write_bytes(data)
    files["annotations.json"] = hashlib.sha256(data).hexdigest()
    return files


def write_standard_dataset(
    folder: Path,
    count: int,
    seed: int = STANDARD_SEED,
    progress: Callable[[int, int], None] | None = None,
) -> StandardDataset:
    """Render `count` bags (plan(count)) into `folder` (write_frames' layout)."""
    summary = StandardDataset(images=count)

    def frames() -> Iterator[SimFrame]:
        for k, cell in enumerate(plan(count)):
            bag_seed = seed + 64 * k  # room for MAX_ATTEMPTS seeds per bag
            if cell is None:
                summary.attempts += 1
                yield render_clean(k, bag_seed)
                continue
            frame, attempts = render_cell(cell, bag_seed)
            landed = Cell.of(frame)
            if landed is not None:
                summary.covered.add(landed)
            if landed != cell:
                summary.missed.append(cell)
            summary.threat_images += 1
            summary.attempts += attempts
            yield frame

    info = {"description": "edge standard regression suite", "seed": seed, "count": count}
    step = None if progress is None else (lambda done: progress(done, count))
    summary.files = write_frames(folder, frames(), info, step)
    return summary
