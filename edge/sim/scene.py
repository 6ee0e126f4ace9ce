"""Compose a bag from shape families and render it as a line-scan dual-energy frame.

Physics: each part adds mu(E) * thickness to the attenuation along its footprint
(Beer-Lambert, so overlaps add); the detector sees Poisson photon counts of
I0 * exp(-A) at each energy, blurred, with electronic noise, per-column gain residue and
per-row jitter of a line-scan array. Rows are scan lines (the bag's length, along the
belt); columns are the 1,000 detector pixels across the belt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.frames import AIR_LEVEL
from edge.sim.materials import MATERIALS
from edge.sim.shapes import CLASSES, CLUTTER, THREATS, Part, SimObject, rect, rounded_rect

BELT_PIXELS = 1000
PHOTONS_HIGH = 40000.0  # photons per pixel in open air, high energy
PHOTONS_LOW = 15000.0  # fewer low-energy photons survive the tube filter
ELECTRONIC_NOISE = 12.0  # in calibrated units (AIR_LEVEL = open air)
OCCLUDER_ATTENUATION = 0.8  # high-energy attenuation of other objects that hides a threat

CLUTTER_COUNTS = {"low": (2, 5), "medium": (6, 10), "high": (11, 18)}
DENSE_OCCLUDERS = ("plate", "laptop", "tool", "hair_dryer", "glass_jar", "phone")


@dataclass
class Annotation:
    label: str
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels
    attributes: dict[str, str]


@dataclass
class SimFrame:
    """A simulated frame: calibrated uint16 channels (H, W), ground truth and slice tags."""

    high: npt.NDArray[np.uint16]
    low: npt.NDArray[np.uint16]
    annotations: list[Annotation]
    attributes: dict[str, str]
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ThreatControl:
    """Overrides for the bag's first threat, used to fill slice cells on purpose.

    `angle_deg`: its rotation; `long_side_px`: scale it so its box's long side (after
    rotation and view) is about this many pixels; `occluder`, `occluder_offset_px`,
    `occluder_long_side_px`: which dense object covers it (with `occlude=True`), how far
    from its centre, and how large. Random draws happen as without control, so the rest
    of the bag stays the seed's bag.
    """

    angle_deg: float | None = None
    long_side_px: float | None = None
    occluder: str | None = None
    occluder_offset_px: float | None = None
    occluder_long_side_px: float | None = None


@dataclass
class _Placed:
    obj: SimObject
    cx: float
    cy: float
    angle_deg: float


class _Canvas:
    """Attenuation accumulators for one frame, (H, W) float32 per energy."""

    def __init__(self, height: int, width: int) -> None:
        self.a_high = np.zeros((height, width), np.float32)
        self.a_low = np.zeros((height, width), np.float32)

    @property
    def shape(self) -> tuple[int, int]:
        h, w = self.a_high.shape
        return h, w


def _transform(
    points: npt.NDArray[np.float64], placed: _Placed, squash: float
) -> npt.NDArray[np.float64]:
    a = math.radians(placed.angle_deg)
    c, s = math.cos(a), math.sin(a)
    rotated = points @ np.array([[c, s], [-s, c]])
    rotated[:, 0] *= squash  # a side view foreshortens across the belt
    placed_points: npt.NDArray[np.float64] = rotated + [placed.cx, placed.cy]
    return placed_points


def _draw_part(
    part: Part, pts: npt.NDArray[np.float64], size: tuple[int, int]
) -> npt.NDArray[np.float32]:
    """Coverage in [0, 1] of one part on a patch of `size` (h, w), sub-pixel anti-aliased."""
    mask = np.zeros(size, np.uint8)
    fixed = np.round(pts * 4).astype(np.int32).reshape(-1, 1, 2)  # shift=2: quarter pixels
    if part.width > 0:
        cv2.polylines(
            mask,
            [fixed],
            part.closed,
            255,
            thickness=max(1, int(round(part.width))),
            lineType=cv2.LINE_AA,
            shift=2,
        )
    else:
        cv2.fillPoly(mask, [fixed], 255, lineType=cv2.LINE_AA, shift=2)
    return mask.astype(np.float32) * np.float32(1.0 / 255.0)


def _thickness(
    part: Part, coverage: npt.NDArray[np.float32], squash: float
) -> npt.NDArray[np.float32]:
    t = np.float32(part.thickness_cm / squash)
    if not part.round_profile:
        return coverage * t
    inside = (coverage > 0.5).astype(np.uint8)
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
    dmax = float(dist.max())
    if dmax <= 0:
        return coverage * t
    # Circular cross-section: chord length of a cylinder at distance d from its wall.
    u = 1.0 - dist / dmax
    profile = np.sqrt(np.clip(1.0 - u * u, 0.0, 1.0))
    shaped: npt.NDArray[np.float32] = coverage * np.maximum(profile, 0.3) * t
    return shaped


def _render(
    canvas: _Canvas, placed: _Placed, squash: float
) -> tuple[tuple[int, int], npt.NDArray[np.float32]]:
    """Add one object's attenuation; return its patch origin (x0, y0) and high-energy A."""
    h, w = canvas.shape
    transformed = [_transform(p.points, placed, squash) for p in placed.obj.parts]
    pad = max((p.width for p in placed.obj.parts), default=0.0) + 3
    allpts = np.concatenate(transformed)
    x0 = int(max(0, math.floor(allpts[:, 0].min() - pad)))
    y0 = int(max(0, math.floor(allpts[:, 1].min() - pad)))
    x1 = int(min(w, math.ceil(allpts[:, 0].max() + pad)))
    y1 = int(min(h, math.ceil(allpts[:, 1].max() + pad)))
    own_high = np.zeros((max(0, y1 - y0), max(0, x1 - x0)), np.float32)
    if own_high.size == 0:
        return (x0, y0), own_high
    for part, pts in zip(placed.obj.parts, transformed, strict=True):
        coverage = _draw_part(part, pts - [x0, y0], own_high.shape)
        thickness = _thickness(part, coverage, squash)
        material = MATERIALS[part.material]
        own_high += material.mu_high * thickness
        canvas.a_low[y0:y1, x0:x1] += material.mu_low * thickness
    canvas.a_high[y0:y1, x0:x1] += own_high
    return (x0, y0), own_high


def _bag_shell(rng: np.random.Generator, kind: str, bw: float, bl: float) -> SimObject:
    """The container: hard suitcase, soft bag or open tray; footprint bw x bl pixels."""
    if kind == "tray":
        outer = rounded_rect(-bl / 2, -bw / 2, bl / 2, bw / 2, 20)
        return SimObject(
            "tray", [Part("plastic", outer, 0.5), Part("plastic", outer, 1.5, width=14)]
        )
    if kind == "suitcase":
        outer = rounded_rect(-bl / 2, -bw / 2, bl / 2, bw / 2, 35)
        parts = [Part("plastic", outer, 0.6), Part("plastic", outer, 2.0, width=10)]
        for sign in (-1, 1):  # telescopic handle rods and wheels
            y = sign * bw * 0.3
            parts.append(
                Part(
                    "aluminium",
                    rect(-bl / 2 + 15, y - 5, bl / 2 - 15, y + 5),
                    1.2,
                    round_profile=True,
                )
            )
            for xs in (-1, 1):
                cx, cy = xs * (bl / 2 - 25), sign * (bw / 2 - 25)
                parts.append(
                    Part("plastic", rounded_rect(cx - 18, cy - 18, cx + 18, cy + 18, 16), 3.0)
                )
                parts.append(Part("steel", rect(cx - 3, cy - 3, cx + 3, cy + 3), 2.0))
        return SimObject("suitcase", parts)
    outer = rounded_rect(-bl / 2, -bw / 2, bl / 2, bw / 2, 60)
    parts = [Part("textile", outer, 2.0), Part("steel", outer * 0.97, 0.12, width=3)]
    for _ in range(int(rng.integers(1, 4))):
        x, y = rng.uniform(-bl / 3, bl / 3), rng.uniform(-bw / 3, bw / 3)
        parts.append(Part("steel", rect(x, y, x + 14, y + 10), 0.3))
    return SimObject("softbag", parts)


def _rotation_bucket(angle: float) -> str:
    return str(int(round((angle % 180.0) / 45.0)) % 4 * 45)


def _size_bucket(box: tuple[float, float, float, float]) -> str:
    long_side = max(box[2] - box[0], box[3] - box[1])
    return "small" if long_side < 100 else "medium" if long_side < 200 else "large"


def _occlusion_bucket(fraction: float) -> str:
    return "none" if fraction < 0.15 else "partial" if fraction < 0.5 else "heavy"


def _scaled_to(obj: SimObject, long_side: float, angle_deg: float, squash: float) -> SimObject:
    """The object scaled so its box at this angle and view has `long_side` px (thickness kept)."""
    probe = _Placed(obj, 0.0, 0.0, angle_deg)
    points = np.concatenate([_transform(p.points, probe, squash) for p in obj.parts])
    extent = float(max(np.ptp(points[:, 0]), np.ptp(points[:, 1])))
    scale = long_side / max(extent, 1.0)
    parts = [
        Part(p.material, p.points * scale, p.thickness_cm, p.round_profile, p.width, p.closed)
        for p in obj.parts
    ]
    return SimObject(obj.kind, parts, obj.label, obj.dense, dict(obj.extra))


def object_attenuation(
    obj: SimObject, cx: float, cy: float, angle_deg: float, height: int, width: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], tuple[float, float, float, float]]:
    """One object's attenuation on an empty (height, width) belt, top view: (A_high, A_low,
    box x1, y1, x2, y2 in pixels). What threat image projection adds to a real bag."""
    canvas = _Canvas(height, width)
    (x0, y0), own_high = _render(canvas, _Placed(obj, cx, cy, angle_deg), 1.0)
    ys, xs = np.nonzero(own_high > 0.01)
    if xs.size == 0:
        return canvas.a_high, canvas.a_low, (0.0, 0.0, 0.0, 0.0)
    box = (
        float(x0 + xs.min()),
        float(y0 + ys.min()),
        float(x0 + xs.max() + 1),
        float(y0 + ys.max() + 1),
    )
    return canvas.a_high, canvas.a_low, box


def _pick_clutter(rng: np.random.Generator) -> SimObject:
    names = list(CLUTTER)
    weights = np.array([CLUTTER[n][1] for n in names])
    name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    return CLUTTER[name][0](rng)


def simulate_bag(
    seed: int,
    *,
    threat_ratio: float = 0.5,
    threats: list[str] | None = None,
    clutter: str | None = None,
    view: str | None = None,
    bag: str | None = None,
    occlude: bool | None = None,
    control: ThreatControl | None = None,
) -> SimFrame:
    """Render one bag, deterministically for `seed`.

    `threats` forces the threat classes (an empty list forces a clean bag); otherwise a
    bag carries a threat with probability `threat_ratio`. `occlude` forces (or forbids)
    a dense object over the threat; `control` sets the first threat's pose and size.
    """
    rng = np.random.default_rng(seed)
    bag = bag or str(rng.choice(["suitcase", "softbag", "tray"], p=[0.45, 0.4, 0.15]))
    view = view or str(rng.choice(["top", "side"], p=[0.7, 0.3]))
    squash = 1.0 if view == "top" else float(rng.uniform(0.6, 0.85))
    if threats is None:
        if rng.random() < threat_ratio:
            n = 1 if rng.random() < 0.85 else 2
            threats = [CLASSES[int(i)] for i in rng.integers(0, len(CLASSES), size=n)]
        else:
            threats = []
    if clutter is None:
        clutter = str(rng.choice(["low", "medium", "high"], p=[0.3, 0.4, 0.3]))
    if bag == "tray" and clutter == "high":
        clutter = "medium"

    bag_len = float(rng.uniform(480, 820))
    bag_w = float(rng.uniform(380, 660))
    margin = float(rng.uniform(30, 60))
    height = int(bag_len + 2 * margin)
    width = BELT_PIXELS
    bag_cx = float(rng.uniform(bag_w / 2 + 20, width - bag_w / 2 - 20))
    bag_cy = height / 2
    canvas = _Canvas(height, width)

    def place_inside(obj: SimObject, keep_whole: bool) -> _Placed:
        extent = max(float(np.abs(np.concatenate([p.points for p in obj.parts])).max()), 1.0)
        inset_x = min(extent if keep_whole else extent * 0.6, bag_w / 2 - 5)
        inset_y = min(extent if keep_whole else extent * 0.6, bag_len / 2 - 5)
        cx = rng.uniform(bag_cx - bag_w / 2 + inset_x, bag_cx + bag_w / 2 - inset_x)
        cy = rng.uniform(bag_cy - bag_len / 2 + inset_y, bag_cy + bag_len / 2 - inset_y)
        return _Placed(obj, float(cx), float(cy), float(rng.uniform(0, 360)))

    shell = _Placed(_bag_shell(rng, bag, bag_w, bag_len), bag_cy * 0 + bag_cx, bag_cy, 90.0)
    shell.angle_deg = 90.0  # long side along the belt (rows)
    _render(canvas, shell, 1.0)

    lo, hi = CLUTTER_COUNTS[clutter]
    if bag == "tray":
        lo, hi = max(1, lo - 1), min(hi, 6)
    for _ in range(int(rng.integers(lo, hi + 1))):
        _render(canvas, place_inside(_pick_clutter(rng), keep_whole=False), squash)

    annotations: list[Annotation] = []
    placed_threats = []
    for k, name in enumerate(threats):
        obj = THREATS[name](rng)
        if k == 0 and control is not None and control.long_side_px is not None:
            angle = 0.0 if control.angle_deg is None else control.angle_deg
            obj = _scaled_to(obj, control.long_side_px, angle, squash)
        placed = place_inside(obj, keep_whole=True)
        if k == 0 and control is not None and control.angle_deg is not None:
            placed.angle_deg = control.angle_deg
        placed_threats.append(placed)
    threat_layers = []
    for placed in placed_threats:
        origin, own_high = _render(canvas, placed, squash)
        threat_layers.append((placed, origin, own_high))

    if occlude is None:
        occlude = bool(threats) and rng.random() < 0.35
    if occlude and placed_threats:
        target = placed_threats[0]
        name = str(rng.choice(DENSE_OCCLUDERS))
        if control is not None and control.occluder is not None:
            name = control.occluder
        occluder = CLUTTER[name][0](rng)
        offset = float(rng.uniform(20, 70))
        if control is not None and control.occluder_offset_px is not None:
            offset = control.occluder_offset_px
        if control is not None and control.occluder_long_side_px is not None:
            occluder = _scaled_to(occluder, control.occluder_long_side_px, 0.0, 1.0)
        direction = rng.uniform(0, 2 * math.pi)
        _render(
            canvas,
            _Placed(
                occluder,
                target.cx + offset * math.cos(direction),
                target.cy + offset * math.sin(direction),
                float(rng.uniform(0, 360)),
            ),
            squash,
        )

    for placed, (x0, y0), own_high in threat_layers:
        inside = own_high > 0.01
        ys, xs = np.nonzero(inside)
        if xs.size == 0:
            continue
        box = (
            float(x0 + xs.min()),
            float(y0 + ys.min()),
            float(x0 + xs.max() + 1),
            float(y0 + ys.max() + 1),
        )
        others = canvas.a_high[y0 : y0 + own_high.shape[0], x0 : x0 + own_high.shape[1]] - own_high
        occluded = float((others[inside] > OCCLUDER_ATTENUATION).mean())
        label = placed.obj.label
        assert label is not None
        annotations.append(
            Annotation(
                label,
                box,
                {
                    "rotation": _rotation_bucket(placed.angle_deg),
                    "size": _size_bucket(box),
                    "occluded": _occlusion_bucket(occluded),
                },
            )
        )

    high, low = _acquire(canvas, rng)
    primary = annotations[0].attributes if annotations else {}
    attributes = {
        "clutter": clutter,
        "view": view,
        "bag": bag,
        "threat": annotations[0].label if annotations else "none",
        "occluded": primary.get("occluded", "none"),
        "rotation": primary.get("rotation", "none"),
        "size": primary.get("size", "none"),
    }
    return SimFrame(high, low, annotations, attributes, seed)


def _acquire(
    canvas: _Canvas, rng: np.random.Generator
) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint16]]:
    """Turn attenuation into noisy calibrated detector values, as a line-scan array does."""
    h, w = canvas.shape
    # Row jitter: each scan line lands slightly off across the belt (vibration).
    jitter = np.clip(np.cumsum(rng.normal(0, 0.08, size=h)), -0.8, 0.8).astype(np.float32)
    map_x = np.arange(w, dtype=np.float32)[None, :] + jitter[:, None]
    map_y = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, axis=1)
    gain = (1.0 + rng.normal(0, 0.004, size=w)).astype(np.float32)
    out = []
    for attenuation, photons in ((canvas.a_high, PHOTONS_HIGH), (canvas.a_low, PHOTONS_LOW)):
        transmission = np.exp(-attenuation)
        transmission = cv2.remap(
            transmission, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        transmission = cv2.GaussianBlur(transmission, (0, 0), 0.7)
        # Photon noise is Poisson; at these counts a Gaussian of the same variance is exact
        # to well under a count and several times faster. Electronic noise adds in quadrature.
        mean = transmission * np.float32(AIR_LEVEL)
        sigma = np.sqrt(mean * np.float32(AIR_LEVEL / photons) + np.float32(ELECTRONIC_NOISE**2))
        values = (mean + sigma * rng.standard_normal(size=mean.shape, dtype=np.float32)) * gain[
            None, :
        ]
        out.append(np.clip(values + 0.5, 0, 65535).astype(np.uint16))
    return out[0], out[1]


def render_objects(
    placements: list[tuple[SimObject, float, float, float]], height: int, width: int, seed: int
) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint16]]:
    """Render objects placed at (cx, cy, angle in degrees) on an empty belt: (high, low)."""
    rng = np.random.default_rng(seed)
    canvas = _Canvas(height, width)
    for obj, cx, cy, angle in placements:
        _render(canvas, _Placed(obj, cx, cy, angle), 1.0)
    return _acquire(canvas, rng)


def empty_tray(seed: int) -> SimFrame:
    """An empty plastic tray: the frame every detector must leave clear."""
    rng = np.random.default_rng(seed)
    height, width = 640, BELT_PIXELS
    canvas = _Canvas(height, width)
    _render(
        canvas, _Placed(_bag_shell(rng, "tray", 520.0, 560.0), width / 2, height / 2, 90.0), 1.0
    )
    high, low = _acquire(canvas, rng)
    attributes = {
        "clutter": "none",
        "view": "top",
        "bag": "tray",
        "threat": "none",
        "occluded": "none",
        "rotation": "none",
        "size": "none",
    }
    return SimFrame(high, low, [], attributes, seed)
