"""Simulator: determinism, ground truth, slice attributes and physics sanity."""

from __future__ import annotations

import numpy as np
import pytest

from edge.frames import AIR_LEVEL
from edge.pseudocolor import attenuation, material_classes
from edge.sim.materials import MATERIALS
from edge.sim.scene import BELT_PIXELS, empty_tray, render_objects, simulate_bag
from edge.sim.shapes import CLASSES, THREATS, Part, SimObject, rect


def test_same_seed_same_frame_and_truth() -> None:
    a, b = simulate_bag(1234), simulate_bag(1234)
    assert np.array_equal(a.high, b.high) and np.array_equal(a.low, b.low)
    assert [x.box for x in a.annotations] == [x.box for x in b.annotations]
    assert a.attributes == b.attributes


def test_different_seeds_differ() -> None:
    assert not np.array_equal(simulate_bag(1).high[:200], simulate_bag(2).high[:200])


def test_frame_geometry_is_a_line_scan_tunnel() -> None:
    for seed in range(5):
        f = simulate_bag(seed)
        assert f.high.dtype == np.uint16 and f.low.dtype == np.uint16
        assert f.high.shape == f.low.shape
        assert f.high.shape[1] == BELT_PIXELS  # across the belt
        assert 500 <= f.high.shape[0] <= 1000  # along the belt: set by the bag


@pytest.mark.parametrize("label", CLASSES)
def test_forced_threat_has_a_tight_box_inside_the_frame(label: str) -> None:
    f = simulate_bag(77, threats=[label], occlude=False)
    assert [a.label for a in f.annotations] == [label]
    x1, y1, x2, y2 = f.annotations[0].box
    h, w = f.high.shape
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    assert max(x2 - x1, y2 - y1) >= 30  # the smallest threats are about 40 px long
    # The threat attenuates inside its box: the box is where the object is.
    inside = attenuation(f.high[int(y1) : int(y2), int(x1) : int(x2)])
    assert float(inside.max()) > 0.2


def test_clean_bag_has_no_annotations_and_says_so() -> None:
    f = simulate_bag(5, threats=[])
    assert f.annotations == []
    assert f.attributes["threat"] == "none"


@pytest.fixture(scope="module")
def threat_bags() -> list[dict[str, str]]:
    return [simulate_bag(seed, threat_ratio=1.0).attributes for seed in range(60)]


def test_slice_attributes_cover_the_required_axes(threat_bags: list[dict[str, str]]) -> None:
    seen: dict[str, set[str]] = {
        k: set() for k in ("clutter", "occluded", "rotation", "size", "view")
    }
    for attributes in threat_bags:
        for key in seen:
            seen[key].add(attributes[key])
    assert seen["clutter"] == {"low", "medium", "high"}
    assert seen["view"] == {"top", "side"}
    assert {"0", "45", "90", "135"} <= seen["rotation"]
    assert {"small", "medium", "large"} <= seen["size"]
    assert {"none", "partial"} <= seen["occluded"]


def test_at_least_a_quarter_of_threat_bags_are_occluded(threat_bags: list[dict[str, str]]) -> None:
    occluded = sum(a["occluded"] != "none" for a in threat_bags)
    assert occluded >= len(threat_bags) // 4


def test_threat_ratio_is_honoured() -> None:
    threat = sum(bool(simulate_bag(seed, threat_ratio=0.5).annotations) for seed in range(40))
    assert 10 <= threat <= 30


def _slab(material: str, thickness: float) -> SimObject:
    return SimObject("slab", [Part(material, rect(-60, -60, 60, 60), thickness)])


def _mean_attenuation(material: str, thickness: float) -> tuple[float, float]:
    high, low = render_objects([(_slab(material, thickness), 100.0, 100.0, 0.0)], 200, 200, seed=3)
    core = (slice(80, 120), slice(80, 120))
    return float(attenuation(high)[core].mean()), float(attenuation(low)[core].mean())


@pytest.mark.parametrize("material", ["plastic", "water", "aluminium", "steel"])
def test_thicker_means_more_attenuation(material: str) -> None:
    thin_high, thin_low = _mean_attenuation(material, 0.2)
    thick_high, thick_low = _mean_attenuation(material, 0.6)
    assert thick_high > thin_high * 2 and thick_low > thin_low * 2  # Beer-Lambert: A ~ mu t


def test_metal_ratio_above_organic() -> None:
    plastic = _mean_attenuation("plastic", 4.0)
    steel = _mean_attenuation("steel", 0.3)
    ratio_plastic = plastic[1] / plastic[0]
    ratio_steel = steel[1] / steel[0]
    assert ratio_plastic < 1.4 < 2.3 < ratio_steel
    assert ratio_steel == pytest.approx(MATERIALS["steel"].ratio, rel=0.1)


def test_overlaps_add_attenuation() -> None:
    one, _ = render_objects([(_slab("aluminium", 1.0), 100.0, 100.0, 0.0)], 200, 200, seed=1)
    two, _ = render_objects(
        [
            (_slab("aluminium", 1.0), 100.0, 100.0, 0.0),
            (_slab("aluminium", 1.0), 100.0, 100.0, 0.0),
        ],
        200,
        200,
        seed=1,
    )
    a1 = float(attenuation(one)[90:110, 90:110].mean())
    a2 = float(attenuation(two)[90:110, 90:110].mean())
    assert a2 == pytest.approx(2 * a1, rel=0.05)


def test_material_classes_of_rendered_objects() -> None:
    high, low = render_objects(
        [
            (_slab("plastic", 4.0), 100.0, 100.0, 0.0),
            (_slab("aluminium", 1.0), 300.0, 100.0, 0.0),
            (_slab("steel", 0.3), 500.0, 100.0, 0.0),
            (_slab("steel", 5.0), 700.0, 100.0, 0.0),
        ],
        200,
        800,
        seed=2,
    )
    classes = material_classes(high, low)
    assert classes[100, 100] == 1 and classes[100, 300] == 2
    assert classes[100, 500] == 3 and classes[100, 700] == 4
    assert classes[5, 5] == 0  # open belt


def test_noise_is_photon_limited() -> None:
    high, low = render_objects([], 100, 100, seed=9)
    # Open air reads AIR_LEVEL on average; the low channel (fewer photons) is noisier.
    assert float(high.mean()) == pytest.approx(AIR_LEVEL, rel=0.01)
    assert float(low.std()) > float(high.std()) > 0


def test_empty_tray_is_clean_and_deterministic() -> None:
    a, b = empty_tray(4), empty_tray(4)
    assert a.annotations == [] and np.array_equal(a.high, b.high)


def test_every_threat_family_builds_with_known_materials() -> None:
    rng = np.random.default_rng(0)
    for name, build in THREATS.items():
        for _ in range(20):
            obj = build(rng)
            assert obj.label == name
            assert all(p.material in MATERIALS for p in obj.parts)
