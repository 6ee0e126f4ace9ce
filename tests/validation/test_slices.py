"""Slice specs and membership: image attributes, box properties, and their combinations."""

from __future__ import annotations

import pytest

from edge.errors import BadInputError
from edge.validation.slices import (
    BagTruth,
    SliceSpec,
    attribute_text,
    box_dimensions,
    index_slices,
    size_bucket,
    slice_name,
)

CLASSES = ("gun", "knife")


def bag(key: str, attrs: dict[str, str], *boxes: tuple[int, dict[str, str]]) -> BagTruth:
    return BagTruth(key, (f"{key}.png",), attrs, tuple(boxes))


BAGS = [
    bag("a", {"clutter": "low", "view": "top"}, (0, {"size": "small", "occluded": "none"})),
    bag("b", {"clutter": "high", "view": "top"}, (0, {"size": "large", "occluded": "heavy"})),
    # Two knives of different sizes: the bag is in both knife size slices.
    bag(
        "c",
        {"clutter": "high", "view": "side"},
        (1, {"size": "small", "occluded": "none"}),
        (1, {"size": "large", "occluded": "none"}),
    ),
    bag("d", {"clutter": "low", "view": "top"}),
    bag("e", {"clutter": "high"}),  # no view: "unknown"
]


@pytest.mark.parametrize(
    ("text", "dims"),
    [
        ("clutter", ("clutter",)),
        ("class x clutter", ("class", "clutter")),
        ("  clutter  x occluded x size ", ("clutter", "occluded", "size")),
        ("all", ()),
        ("", ()),
    ],
)
def test_spec_parsing(text: str, dims: tuple[str, ...]) -> None:
    spec = SliceSpec.parse(text)
    assert spec.dims == dims
    assert spec.name == (" x ".join(dims) or "all")


@pytest.mark.parametrize("text", ["clutter x clutter", "clut ter", "a x", "x b", "class*size"])
def test_bad_specs_are_refused(text: str) -> None:
    with pytest.raises(BadInputError, match="slice"):
        SliceSpec.parse(text)


def test_image_slices_hold_pd_per_class_and_pfa() -> None:
    index = index_slices(BAGS, [SliceSpec.parse("clutter")], CLASSES)
    assert index.pd[()] == {0: (0, 1), 1: (2,)}  # "all" first
    assert index.pfa[()] == (3, 4)
    high = (("clutter", "high"),)
    assert index.pd[high] == {0: (1,), 1: (2,)}
    assert index.pfa[high] == (4,)
    assert index.keys[0] == () and index.spec_of[high] == "clutter"
    view = index_slices(BAGS, [SliceSpec.parse("view")], CLASSES)
    assert view.pfa[(("view", "unknown"),)] == (4,)


def test_box_slices_and_combinations() -> None:
    specs = [SliceSpec.parse("size"), SliceSpec.parse("class x clutter x size")]
    index = index_slices(BAGS, specs, CLASSES)
    assert index.pd[(("size", "small"),)] == {0: (0,), 1: (2,)}
    assert index.pd[(("size", "large"),)] == {0: (1,), 1: (2,)}
    # A clean bag has no boxes, so no size: box slices have no Pfa.
    assert (("size", "small"),) not in index.pfa
    combo = (("class", "knife"), ("clutter", "high"), ("size", "large"))
    assert index.pd[combo] == {1: (2,)}
    assert not any(k and k[0] == ("class", "gun") and k[1] == ("clutter", "low") and
                   k[2] == ("size", "large") for k in index.pd)  # fmt: skip
    assert slice_name(combo) == "class=knife, clutter=high, size=large"
    assert slice_name(()) == "all"


def test_one_box_must_match_every_box_dimension() -> None:
    index = index_slices(BAGS, [SliceSpec.parse("occluded x size")], CLASSES)
    assert index.pd[(("occluded", "none"), ("size", "large"))] == {1: (2,)}
    assert (("occluded", "heavy"), ("size", "small")) not in index.pd


def test_values_sort_naturally_and_attributes_read_as_text() -> None:
    bags = [bag(str(r), {}, (0, {"rotation": r})) for r in ("135", "45", "0", "90")]
    index = index_slices(bags, [SliceSpec.parse("rotation")], CLASSES)
    assert [k[0][1] for k in index.keys[1:]] == ["0", "45", "90", "135"]
    assert box_dimensions(bags) == {"rotation", "size"}
    assert [attribute_text(v) for v in ("x", 3, 2.5, True, None, [1])] == [
        "x",
        "3",
        "2.5",
        "true",
        None,
        None,
    ]
    assert [size_bucket(99, 20), size_bucket(20, 100), size_bucket(250, 10)] == [
        "small",
        "medium",
        "large",
    ]
