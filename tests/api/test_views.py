"""Image views: grey windowing, the material map, boxes, PNG encoding."""

from __future__ import annotations

import cv2
import numpy as np

from edge.api.png import encode_png
from edge.api.views import (
    PngCache,
    draw_boxes,
    grey_view,
    material_index,
    material_view,
)
from edge.frames import AIR_LEVEL
from edge.pseudocolor import material_classes
from edge.sim.scene import simulate_bag


def test_grey_view_is_bright_where_x_rays_pass_and_black_where_none_do() -> None:
    levels = np.array([[int(AIR_LEVEL), 20000, 2000, 0]], np.uint16)
    grey = grey_view(levels)
    assert grey.dtype == np.uint8 and grey.shape == levels.shape
    assert grey[0, 0] == 255 and grey[0, -1] == 0
    assert list(grey[0]) == sorted(grey[0], reverse=True)


def test_material_view_uses_the_screening_palette() -> None:
    bag = simulate_bag(7, threats=["gun"])
    rgb = material_view(bag.high, bag.low)
    assert rgb.shape == (*bag.high.shape, 3) and rgb.dtype == np.uint8
    colours = {tuple(int(v) for v in c) for c in np.unique(rgb.reshape(-1, 3), axis=0)}
    assert (40, 90, 220) in colours  # a gun is metal: blue
    assert (235, 140, 30) in colours  # clothes are organic: orange
    assert colours <= {(255, 255, 255), (235, 140, 30), (40, 170, 60), (40, 90, 220), (0, 0, 0)}


def test_boxes_are_drawn_on_a_copy() -> None:
    grey = np.full((100, 200), 128, np.uint8)
    boxed = draw_boxes(grey, [{"class": "knife", "score": 0.87, "box": [20, 30, 120, 90]}])
    assert boxed.shape == (100, 200, 3) and (grey == 128).all()
    assert tuple(boxed[60, 20]) == (255, 45, 85)  # the box's left edge
    assert tuple(boxed[60, 70]) == (128, 128, 128)  # inside stays the image


def test_png_round_trip_keeps_rgb_order() -> None:
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200  # red
    decoded = cv2.imdecode(np.frombuffer(encode_png(rgb), np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), rgb)
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5)
    assert (cv2.imdecode(np.frombuffer(encode_png(grey), np.uint8), -1) == grey).all()


def test_png_cache_keeps_the_newest_within_its_budget() -> None:
    cache = PngCache(max_bytes=10)
    cache.put(("a", "pseudo", False), b"12345")
    cache.put(("b", "pseudo", False), b"12345")
    assert cache.get(("a", "pseudo", False)) == b"12345"  # now the most recent
    cache.put(("c", "high", True), b"123")
    assert cache.get(("b", "pseudo", False)) is None  # the least recent went
    assert cache.get(("a", "pseudo", False)) and cache.get(("c", "high", True))
    cache.put(("d", "low", False), b"x" * 11)  # larger than the whole budget: not kept
    assert cache.get(("d", "low", False)) is None


def test_material_index_matches_the_renderers_classes() -> None:
    for seed in (3, 7, 11):
        bag = simulate_bag(seed, threats=["gun", "bottle"])
        np.testing.assert_array_equal(
            material_index(bag.high, bag.low), material_classes(bag.high, bag.low)
        )
