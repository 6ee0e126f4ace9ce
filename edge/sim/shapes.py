"""Parametric shape families: threats and benign clutter, as parts of known material.

Every builder returns a `SimObject` in local pixel coordinates centred near the origin,
pointing along +x; the scene rotates, squashes (view) and places it. Thicknesses are in cm
along the beam.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Points = npt.NDArray[np.float64]


@dataclass
class Part:
    """One piece of one material: a filled polygon, or a stroked polyline of `width` px."""

    material: str
    points: Points  # (K, 2) x, y in pixels
    thickness_cm: float
    round_profile: bool = False  # cylinder-like cross-section instead of a flat slab
    width: float = 0.0  # > 0: stroke the polyline with this width instead of filling
    closed: bool = True


@dataclass
class SimObject:
    kind: str
    parts: list[Part]
    label: str | None = None  # threat class, None for clutter
    dense: bool = False  # can hide a threat (metal or thick clutter)
    extra: dict[str, float] = field(default_factory=dict)


Rng = np.random.Generator


def rect(x0: float, y0: float, x1: float, y1: float) -> Points:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 28) -> Points:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def rounded_rect(x0: float, y0: float, x1: float, y1: float, r: float) -> Points:
    r = min(r, (x1 - x0) / 2, (y1 - y0) / 2)
    pts: list[tuple[float, float]] = []
    for cx, cy, a0 in (
        (x1 - r, y0 + r, -90),
        (x1 - r, y1 - r, 0),
        (x0 + r, y1 - r, 90),
        (x0 + r, y0 + r, 180),
    ):
        for a in np.linspace(a0, a0 + 90, 6):
            pts.append((cx + r * math.cos(math.radians(a)), cy + r * math.sin(math.radians(a))))
    return np.array(pts, np.float64)


# ----------------------------------------------------------------------------- threats


def gun(rng: Rng) -> SimObject:
    """Pistol or revolver: steel slide/barrel, steel or polymer grip, magazine, trigger guard."""
    length = rng.uniform(150, 260)
    h = length * rng.uniform(0.16, 0.22)
    parts: list[Part] = []
    steel_t = rng.uniform(1.8, 2.8)
    revolver = rng.random() < 0.3
    half = length / 2
    parts.append(Part("steel", rect(-half, -h, half * rng.uniform(0.55, 0.8), 0), steel_t))
    if revolver:
        parts.append(
            Part(
                "steel", ellipse(half * 0.2, -h * 0.45, h * 0.75, h * 0.65), 3.5, round_profile=True
            )
        )
    grip_x0 = half * rng.uniform(0.15, 0.35)
    gw = length * rng.uniform(0.18, 0.24)
    gl = length * rng.uniform(0.45, 0.62)
    slant = length * rng.uniform(0.06, 0.16)
    grip = np.array(
        [[grip_x0, 0], [grip_x0 + gw, 0], [grip_x0 + gw + slant, gl], [grip_x0 + slant, gl * 0.97]],
        np.float64,
    )
    polymer = (not revolver) and rng.random() < 0.5
    parts.append(Part("plastic" if polymer else "steel", grip, 3.0 if polymer else 2.4))
    if not revolver:
        mag = np.array(
            [
                [grip_x0 + gw * 0.2, 0],
                [grip_x0 + gw * 0.8, 0],
                [grip_x0 + gw * 0.8 + slant, gl * 0.95],
                [grip_x0 + gw * 0.2 + slant, gl * 0.93],
            ],
            np.float64,
        )
        parts.append(Part("steel", mag, 1.2 if polymer else 0.6))
        parts.append(Part("brass", mag * [1, 0.7] + [0, 2], 1.0))
    guard_c = (grip_x0 - gw * 0.45, h * 0.05)
    guard = ellipse(guard_c[0], guard_c[1], gw * 0.55, gl * 0.28, 20)
    guard = guard[guard[:, 1] >= 0]
    parts.append(Part("steel", guard, 1.0, width=max(3.0, length * 0.02), closed=False))
    parts.append(Part("steel", rect(guard_c[0] - 2, 0, guard_c[0] + 3, gl * 0.18), 0.8))
    return SimObject("gun", parts, label="gun", dense=True)


def knife(rng: Rng) -> SimObject:
    """Kitchen or folding knife: thin steel blade, thick organic handle with a steel tang."""
    length = rng.uniform(150, 320)
    blade_l = length * rng.uniform(0.5, 0.65)
    w = length * rng.uniform(0.07, 0.14)
    curve = rng.uniform(0.0, 0.5)
    xs = np.linspace(0, blade_l, 10)
    spine = np.stack([xs, np.full_like(xs, -w / 2)], axis=1)
    edge_y = w / 2 - (w * (0.5 + curve)) * (xs / blade_l) ** 2
    edge = np.stack([xs[::-1], np.minimum(edge_y[::-1], w / 2)], axis=1)
    tip = np.array([[blade_l * 1.04, -w / 2 + w * 0.1 * curve]])
    x_shift = -length / 2 + (length - blade_l)
    blade = np.concatenate([spine, tip, edge]) + [x_shift, 0]
    parts = [Part("steel", blade, rng.uniform(0.12, 0.3))]
    handle = rounded_rect(-length / 2, -w * 0.45, x_shift, w * 0.45, w * 0.3)
    material = str(rng.choice(["plastic", "wood", "rubber", "steel"], p=[0.45, 0.3, 0.15, 0.1]))
    parts.append(
        Part(
            material,
            handle,
            0.6 if material == "steel" else rng.uniform(1.4, 2.4),
            round_profile=material != "steel",
        )
    )
    if material != "steel":
        parts.append(Part("steel", rect(-length / 2 + 4, -w * 0.12, x_shift, w * 0.12), 0.25))
        for fx in (0.25, 0.6):
            x = -length / 2 + (x_shift + length / 2) * fx
            parts.append(Part("brass", ellipse(x, 0, 2.5, 2.5, 10), 1.5))
    return SimObject("knife", parts, label="knife", dense=False)


def blade(rng: Rng) -> SimObject:
    """Loose utility-knife or razor blade: small, thin steel, the hardest class to see."""
    length = rng.uniform(42, 75)
    w = length * rng.uniform(0.28, 0.42)
    if rng.random() < 0.6:  # trapezoid utility blade with notches
        shape = np.array(
            [
                [-length / 2, w / 2],
                [length / 2, w / 2],
                [length / 2 - w * 0.9, -w / 2],
                [-length / 2 + w * 0.9, -w / 2],
            ]
        )
    else:  # double-edged razor: a rounded rectangle
        shape = rounded_rect(-length / 2, -w / 2, length / 2, w / 2, w * 0.2)
    return SimObject("blade", [Part("steel", shape, rng.uniform(0.09, 0.16))], label="blade")


def scissors(rng: Rng) -> SimObject:
    """Scissors: two steel blades crossing at a pivot, two finger loops."""
    length = rng.uniform(110, 230)
    blade_l = length * rng.uniform(0.5, 0.6)
    bw = length * rng.uniform(0.05, 0.08)
    opening = math.radians(rng.uniform(0, 28))
    steel_t = rng.uniform(0.2, 0.35)
    plastic_loops = rng.random() < 0.6
    parts: list[Part] = []
    pivot_x = length / 2 - blade_l
    for sign in (-1, 1):
        ang = sign * opening / 2
        c, s = math.cos(ang), math.sin(ang)
        b = np.array([[0, -bw / 2], [blade_l, -bw * 0.1], [blade_l, bw * 0.05], [0, bw / 2]])
        b = b @ np.array([[c, s], [-s, c]]) + [pivot_x, 0]
        parts.append(Part("steel", b, steel_t))
        loop_c = np.array([-(length - blade_l) * 0.55, sign * length * 0.1])
        loop_c = loop_c @ np.array([[c, s], [-s, c]]) + [pivot_x, 0]
        loop = ellipse(loop_c[0], loop_c[1], length * 0.14, length * 0.09, 20)
        lw = max(4.0, length * 0.035)
        parts.append(
            Part(
                "plastic" if plastic_loops else "steel",
                loop,
                0.9 if plastic_loops else steel_t,
                width=lw,
            )
        )
        arm = np.array(
            [
                [pivot_x, -bw * 0.3],
                [pivot_x, bw * 0.3],
                [loop_c[0], loop_c[1] + bw * 0.3],
                [loop_c[0], loop_c[1] - bw * 0.3],
            ]
        )
        parts.append(
            Part("plastic" if plastic_loops else "steel", arm, 0.9 if plastic_loops else steel_t)
        )
    parts.append(Part("steel", ellipse(pivot_x, 0, 3.5, 3.5, 10), 0.8))
    return SimObject("scissors", parts, label="scissors")


def _bottle_outline(length: float, width: float, neck_frac: float) -> Points:
    half = width / 2
    neck_w = width * 0.3
    body_end = length * (1 - neck_frac)
    shoulder = length * neck_frac * 0.5
    pts = [
        [-length / 2, -half],
        [-length / 2 + body_end - shoulder, -half],
        [-length / 2 + body_end, -neck_w / 2],
        [length / 2, -neck_w / 2],
        [length / 2, neck_w / 2],
        [-length / 2 + body_end, neck_w / 2],
        [-length / 2 + body_end - shoulder, half],
        [-length / 2, half],
    ]
    return np.array(pts, np.float64)


def bottle(rng: Rng) -> SimObject:
    """Liquid container over the carry-on limit: plastic or glass bottle, mostly full."""
    length = rng.uniform(150, 290)
    width = length * rng.uniform(0.27, 0.4)
    outline = _bottle_outline(length, width, rng.uniform(0.25, 0.38))
    glass = rng.random() < 0.35
    parts = [
        Part("glass" if glass else "plastic", outline, 0.9 if glass else 0.15, round_profile=True)
    ]
    fill = rng.uniform(0.55, 0.98)
    liquid = outline.copy()
    liquid[:, 0] = np.minimum(liquid[:, 0], -length / 2 + length * fill * 0.85)
    liquid[:, 1] *= 0.95
    width_cm = width * 0.08
    parts.append(Part("water", liquid, width_cm * rng.uniform(0.85, 1.0), round_profile=True))
    parts.append(
        Part("plastic", rect(length / 2 - 8, -width * 0.17, length / 2, width * 0.17), 2.0)
    )
    return SimObject("bottle", parts, label="bottle", dense=glass)


THREATS: dict[str, Callable[[Rng], SimObject]] = {
    "gun": gun,
    "knife": knife,
    "blade": blade,
    "scissors": scissors,
    "bottle": bottle,
}
CLASSES: list[str] = list(THREATS)


# ----------------------------------------------------------------------------- clutter


def clothes(rng: Rng) -> SimObject:
    w, h = rng.uniform(180, 420), rng.uniform(120, 300)
    blob = ellipse(0, 0, w / 2, h / 2, 16) * rng.uniform(0.75, 1.2, size=(16, 1))
    return SimObject("clothes", [Part("textile", blob, rng.uniform(3, 12), round_profile=True)])


def shoe(rng: Rng) -> SimObject:
    length = rng.uniform(220, 320)
    sole = ellipse(0, 0, length / 2, length * 0.17, 20)
    parts = [
        Part("rubber", sole, rng.uniform(2.5, 5), round_profile=True),
        Part("steel", rect(-length * 0.1, -4, length * 0.15, 4), 0.2),
    ]
    for i in range(int(rng.integers(0, 7))):
        parts.append(
            Part("steel", ellipse(length * (0.1 + 0.05 * i), length * 0.1, 2.5, 2.5, 8), 0.3)
        )
    return SimObject("shoe", parts)


def laptop(rng: Rng) -> SimObject:
    w, h = rng.uniform(300, 420), rng.uniform(200, 280)
    parts = [
        Part("aluminium", rect(-w / 2, -h / 2, w / 2, h / 2), rng.uniform(0.3, 0.5)),
        Part("glass", rect(-w / 2 + 8, -h / 2 + 8, w / 2 - 8, h / 2 - 8), 0.2),
        Part("pcb", rect(-w * 0.3, -h * 0.4, w * 0.35, h * 0.05), 0.3),
    ]
    for i in range(int(rng.integers(3, 7))):
        x = -w * 0.4 + i * w * 0.13
        parts.append(Part("battery", rect(x, h * 0.1, x + w * 0.11, h * 0.42), 0.9))
    for _ in range(int(rng.integers(4, 12))):
        x, y = rng.uniform(-w * 0.3, w * 0.3), rng.uniform(-h * 0.4, 0)
        parts.append(
            Part("copper", rect(x, y, x + rng.uniform(4, 20), y + rng.uniform(4, 16)), 0.15)
        )
    return SimObject("laptop", parts, dense=True)


def phone(rng: Rng) -> SimObject:
    w, h = rng.uniform(120, 170), rng.uniform(60, 85)
    parts = [
        Part("aluminium", rounded_rect(-w / 2, -h / 2, w / 2, h / 2, 8), 0.3),
        Part("battery", rect(-w * 0.35, -h * 0.4, w * 0.2, h * 0.4), 0.6),
        Part("copper", rect(w * 0.25, -h * 0.3, w * 0.4, h * 0.2), 0.2),
    ]
    return SimObject("phone", parts, dense=True)


def cable(rng: Rng) -> SimObject:
    n = int(rng.integers(5, 12))
    steps = rng.normal(0, 1, size=(n, 2)) * rng.uniform(25, 60)
    path = np.cumsum(steps, axis=0)
    path -= path.mean(axis=0)
    return SimObject(
        "cable",
        [
            Part("plastic", path, 0.4, width=rng.uniform(4, 8), closed=False),
            Part("copper", path, 0.1, width=1.5, closed=False),
        ],
    )


def charger(rng: Rng) -> SimObject:
    w = rng.uniform(45, 80)
    parts = [
        Part("plastic", rounded_rect(-w / 2, -w * 0.4, w / 2, w * 0.4, 6), 2.5),
        Part("copper", ellipse(0, 0, w * 0.22, w * 0.18, 14), 1.2),
        Part("steel", rect(-w * 0.15, -w * 0.12, w * 0.15, w * 0.12), 0.6),
    ]
    for dy in (-0.15, 0.15):
        parts.append(Part("brass", rect(w / 2, w * dy - 2, w / 2 + 18, w * dy + 2), 0.2))
    parts.append(
        Part(
            "plastic",
            np.array([[-w / 2, 0], [-w / 2 - rng.uniform(40, 120), 10]]),
            0.4,
            width=4,
            closed=False,
        )
    )
    return SimObject("charger", parts)


def hair_dryer(rng: Rng) -> SimObject:
    """Gun-shaped look-alike: plastic body, copper motor windings, steel heating coil."""
    length = rng.uniform(170, 240)
    parts = [
        Part(
            "plastic",
            rounded_rect(-length / 2, -length * 0.14, length / 2, length * 0.14, 15),
            3.0,
            round_profile=True,
        ),
        Part("plastic", rect(0, 0, length * 0.18, length * 0.55), 3.0, round_profile=True),
        Part(
            "copper",
            ellipse(length * 0.25, 0, length * 0.09, length * 0.09, 16),
            2.0,
            round_profile=True,
        ),
        Part("steel", rect(-length * 0.4, -length * 0.07, -length * 0.05, length * 0.07), 0.25),
    ]
    return SimObject("hair_dryer", parts, dense=True)


def toiletry(rng: Rng) -> SimObject:
    """Small containers under the liquid limit: short bottles and tubes."""
    length = rng.uniform(50, 110)
    width = length * rng.uniform(0.3, 0.5)
    if rng.random() < 0.5:
        outline = _bottle_outline(length, width, 0.25)
        parts = [
            Part("plastic", outline, 0.15, round_profile=True),
            Part("water", outline * 0.92, width * 0.07, round_profile=True),
        ]
    else:
        tube = np.array(
            [
                [-length / 2, -width / 2],
                [length / 2, -width * 0.2],
                [length / 2, width * 0.2],
                [-length / 2, width / 2],
            ]
        )
        parts = [Part("aluminium", tube, 0.05), Part("water", tube * 0.9, 1.2, round_profile=True)]
    return SimObject("toiletry", parts)


def empty_bottle(rng: Rng) -> SimObject:
    length = rng.uniform(150, 260)
    outline = _bottle_outline(length, length * rng.uniform(0.27, 0.38), 0.3)
    return SimObject("empty_bottle", [Part("plastic", outline, 0.15, round_profile=True)])


def glass_jar(rng: Rng) -> SimObject:
    w = rng.uniform(70, 120)
    h = w * rng.uniform(0.9, 1.3)
    body = rounded_rect(-h / 2, -w / 2, h / 2, w / 2, w * 0.15)
    return SimObject(
        "glass_jar",
        [
            Part("glass", body, 1.0, round_profile=True),
            Part("water", body * 0.9, w * 0.07, round_profile=True),
            Part("steel", rect(h / 2 - 6, -w * 0.45, h / 2, w * 0.45), 0.4),
        ],
        dense=True,
    )


def cutlery(rng: Rng) -> SimObject:
    """Fork or spoon: thin steel, knife-like in outline."""
    length = rng.uniform(150, 200)
    handle = np.array(
        [[-length / 2, -5], [length * 0.15, -3], [length * 0.15, 3], [-length / 2, 5]]
    )
    if rng.random() < 0.5:
        head = ellipse(length * 0.32, 0, length * 0.18, length * 0.08, 16)
        parts = [Part("steel", handle, 0.2), Part("steel", head, 0.12)]
    else:
        parts = [
            Part("steel", handle, 0.2),
            Part("steel", rect(length * 0.15, -length * 0.06, length * 0.22, length * 0.06), 0.2),
        ]
        for k in range(4):
            y = -length * 0.05 + k * length * 0.033
            parts.append(Part("steel", rect(length * 0.22, y - 1.5, length / 2, y + 1.5), 0.2))
    return SimObject("cutlery", parts)


def tool(rng: Rng) -> SimObject:
    """Wrench, screwdriver or pliers: dense steel look-alikes of knives and scissors."""
    length = rng.uniform(140, 260)
    choice = rng.integers(0, 3)
    if choice == 0:  # wrench
        parts = [
            Part("steel", rect(-length / 2, -length * 0.05, length / 2, length * 0.05), 0.8),
            Part("steel", ellipse(length / 2, 0, length * 0.1, length * 0.1, 16), 0.8),
            Part("steel", ellipse(-length / 2, 0, length * 0.09, length * 0.09, 16), 0.8),
        ]
    elif choice == 1:  # screwdriver
        parts = [
            Part(
                "plastic",
                rounded_rect(-length / 2, -length * 0.07, -length * 0.05, length * 0.07, 8),
                2.5,
                round_profile=True,
            ),
            Part("steel", rect(-length * 0.1, -3, length / 2, 3), 0.6),
        ]
    else:  # pliers
        parts = []
        for sign in (-1, 1):
            jaw = np.array(
                [[0, 0], [length * 0.35, sign * 4], [length * 0.35, sign * 12], [0, sign * 14]]
            )
            arm = np.array(
                [
                    [0, 0],
                    [-length * 0.65, sign * length * 0.12],
                    [-length * 0.65, sign * (length * 0.12 + 12)],
                    [0, sign * 12],
                ]
            )
            parts += [Part("steel", jaw, 0.8), Part("steel", arm, 0.6)]
    return SimObject("tool", parts, dense=True)


def book(rng: Rng) -> SimObject:
    w, h = rng.uniform(130, 260), rng.uniform(180, 300)
    return SimObject(
        "book", [Part("paper", rect(-w / 2, -h / 2, w / 2, h / 2), rng.uniform(1.5, 4))]
    )


def metal_plate(rng: Rng) -> SimObject:
    """A dense slab (a power bank, a steel lunch box, a tablet stand): occludes threats."""
    w, h = rng.uniform(90, 200), rng.uniform(60, 160)
    material = str(rng.choice(["steel", "battery", "aluminium"], p=[0.5, 0.3, 0.2]))
    thick = {
        "steel": rng.uniform(0.3, 0.9),
        "battery": rng.uniform(1.5, 3.0),
        "aluminium": rng.uniform(2.0, 5.0),
    }[material]
    return SimObject(
        "plate", [Part(material, rounded_rect(-w / 2, -h / 2, w / 2, h / 2, 6), thick)], dense=True
    )


CLUTTER: dict[str, tuple[Callable[[Rng], SimObject], float]] = {
    "clothes": (clothes, 3.0),
    "shoe": (shoe, 0.8),
    "laptop": (laptop, 0.5),
    "phone": (phone, 0.8),
    "cable": (cable, 1.2),
    "charger": (charger, 0.8),
    "hair_dryer": (hair_dryer, 0.4),
    "toiletry": (toiletry, 1.2),
    "empty_bottle": (empty_bottle, 0.5),
    "glass_jar": (glass_jar, 0.4),
    "cutlery": (cutlery, 0.6),
    "tool": (tool, 0.6),
    "book": (book, 0.8),
    "plate": (metal_plate, 0.4),
}
