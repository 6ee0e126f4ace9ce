"""Slices of a suite: bags grouped by image attributes, box properties and their combinations.

A slice spec names dimensions joined by " x ", e.g. "clutter", "class x size",
"clutter x occluded". A dimension is:
- `class`: the threat class (restricts a slice's Pd to that class);
- a box dimension: a key of some annotation's `attributes` (the simulator's `occluded`,
  `rotation`, `size`), plus `size` always (a box without it gets the simulator's rule from
  its long side: < 100 px small, < 200 px medium, else large);
- otherwise an image dimension: a key of the image's `attributes` (`clutter`, `view`, ...).

For Pd of class c a threat bag belongs to a slice when its image attributes match and one
box of class c matches every box dimension (a bag with two knives of different sizes is in
both size slices). Pfa slices exist only for specs made of image dimensions: a clean bag
has no boxes. A missing attribute reads "unknown". The empty spec is the slice "all".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge.errors import BadInputError

CLASS_DIM = "class"
SIZE_DIM = "size"
UNKNOWN = "unknown"
SliceKey = tuple[tuple[str, str], ...]  # ((dimension, value), ...) in the spec's order

_DIM_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


def size_bucket(width: float, height: float) -> str:
    """The simulator's size rule on a box's long side in pixels."""
    long_side = max(width, height)
    return "small" if long_side < 100 else "medium" if long_side < 200 else "large"


def attribute_text(value: Any) -> str | None:
    """An attribute as slice text: strings as given, numbers and booleans spelled out,
    None and nested values left out."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def text_attributes(raw: Mapping[str, Any]) -> dict[str, str]:
    return {k: t for k, v in raw.items() if (t := attribute_text(v)) is not None}


@dataclass(frozen=True)
class SliceSpec:
    dims: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> SliceSpec:
        """'class x clutter' -> dims ('class', 'clutter'); 'all' or '' -> ()."""
        stripped = text.strip()
        if stripped in ("", "all"):
            return cls(())
        dims = tuple(part.strip() for part in re.split(r"\s+x\s+", stripped))
        for dim in dims:
            if not _DIM_PATTERN.match(dim):
                raise BadInputError(
                    f"slice {text!r}: {dim!r} is not an attribute name (letters, digits, _ . -; "
                    "combine dimensions with ' x ')"
                )
        if len(set(dims)) != len(dims):
            raise BadInputError(f"slice {text!r}: a dimension is repeated")
        return cls(dims)

    @property
    def name(self) -> str:
        return " x ".join(self.dims) if self.dims else "all"


def slice_name(key: SliceKey) -> str:
    """'all', or 'class=gun, clutter=high'."""
    return ", ".join(f"{dim}={value}" for dim, value in key) if key else "all"


@dataclass(frozen=True)
class BagTruth:
    """One bag (one image, or the views sharing a bag id): what is in it and its tags.

    `boxes`: (class index into the model's classes, box attributes) per ground-truth box.
    """

    key: str
    images: tuple[str, ...]
    attributes: Mapping[str, str]
    boxes: tuple[tuple[int, Mapping[str, str]], ...] = ()

    @property
    def true_classes(self) -> frozenset[int]:
        return frozenset(c for c, _ in self.boxes)


@dataclass(frozen=True)
class SliceIndex:
    """Which bags each slice holds: `pd[key][class]` threat bags (indices into the bag
    list) and `pfa[key]` clean bags; `spec_of[key]` the spec that made the slice."""

    pd: dict[SliceKey, dict[int, tuple[int, ...]]] = field(default_factory=dict)
    pfa: dict[SliceKey, tuple[int, ...]] = field(default_factory=dict)
    spec_of: dict[SliceKey, str] = field(default_factory=dict)

    @property
    def keys(self) -> list[SliceKey]:
        return list(self.spec_of)


def box_dimensions(bags: Iterable[BagTruth]) -> frozenset[str]:
    dims = {SIZE_DIM}
    for bag in bags:
        for _, attrs in bag.boxes:
            dims.update(attrs)
    return frozenset(dims)


def _natural(value: str) -> tuple[int, float, str]:
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def index_slices(
    bags: Sequence[BagTruth], specs: Sequence[SliceSpec], class_names: Sequence[str]
) -> SliceIndex:
    """The slices of every spec (the 'all' slice first), values in natural order."""
    box_dims = box_dimensions(bags)
    index = SliceIndex()
    seen: set[str] = set()
    for spec in [SliceSpec(()), *specs]:
        if spec.name in seen:
            continue
        seen.add(spec.name)
        pd: dict[SliceKey, dict[int, set[int]]] = {}
        pfa: dict[SliceKey, list[int]] = {}
        image_dims = [d for d in spec.dims if d != CLASS_DIM and d not in box_dims]
        bag_dims = [d for d in spec.dims if d in box_dims]
        for i, bag in enumerate(bags):
            image_values = {d: bag.attributes.get(d, UNKNOWN) for d in image_dims}
            if not bag.boxes:
                if len(image_dims) == len(spec.dims):
                    key = tuple((d, image_values[d]) for d in spec.dims)
                    pfa.setdefault(key, []).append(i)
                continue
            for c, attrs in bag.boxes:
                values = dict(image_values)
                values[CLASS_DIM] = class_names[c]
                for d in bag_dims:
                    values[d] = attrs.get(d, UNKNOWN)
                key = tuple((d, values[d]) for d in spec.dims)
                pd.setdefault(key, {}).setdefault(c, set()).add(i)
        keys = sorted(
            set(pd) | set(pfa), key=lambda k: tuple(_natural(v) for _, v in k) if k else ()
        )
        for key in keys:
            index.spec_of[key] = spec.name
            if key in pd:
                index.pd[key] = {
                    c: tuple(sorted(members)) for c, members in sorted(pd[key].items())
                }
            if key in pfa:
                index.pfa[key] = tuple(pfa[key])
    return index
