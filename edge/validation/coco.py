"""COCO box data: ground truth and detection results, loaded and validated (CONTRACT.md 6).

Ground truth is a JSON object with `images` (`id`, `width`, `height`, optional `file_name`,
`attributes`), `annotations` (`id`, `image_id`, `category_id`, `bbox` as [x, y, w, h] in
image pixels, `area`, `iscrowd`, optional `ignore`) and `categories` (`id`, `name`).
Results are a JSON list of {image_id, category_id, bbox, score} (COCO results format).
Every refusal names the file, the record (index and id) and the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.errors import BadInputError
from edge.frames import Detections


class CocoDataError(BadInputError):
    """A COCO file or array that cannot be evaluated; the message names file, record, field."""


class CocoFormatError(CocoDataError):
    """A record with a missing key, a value of the wrong type, or an impossible value."""


class CocoReferenceError(CocoDataError):
    """A duplicate id, or a reference to an image or category that is not declared."""


class CocoTooLargeError(CocoDataError):
    """A file or a list over the configured size limits."""


@dataclass(frozen=True)
class CocoLimits:
    """Refusal limits: file bytes, list lengths, and the tolerance for boxes past the edge."""

    max_file_bytes: int = 256 * 2**20
    max_images: int = 1_000_000
    max_annotations: int = 10_000_000
    max_categories: int = 10_000
    max_detections: int = 10_000_000
    box_tolerance_px: float = 1.0


@dataclass(frozen=True)
class CocoImage:
    id: int
    width: int
    height: int
    file_name: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CocoCategory:
    id: int
    name: str
    supercategory: str = ""


def _column(values: Any, dtype: type[np.generic], name: str, shape: tuple[int, ...]) -> Any:
    array = np.asarray(values, dtype=dtype)
    if array.size == 0:
        array = array.reshape(shape)
    if array.shape != shape:
        raise CocoFormatError(f"{name}: expected shape {shape}, got {array.shape}")
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class CocoGroundTruth:
    """Images, categories, and annotations as columns in file order.

    `boxes` (N, 4) float64 [x, y, w, h] in image pixels; `areas` (N,) the `area` field (used
    for the area ranges, as pycocotools does); `iscrowd`, `ignore` (N,) bool.
    """

    images: tuple[CocoImage, ...]
    categories: tuple[CocoCategory, ...]
    ann_ids: npt.NDArray[np.int64]
    image_ids: npt.NDArray[np.int64]
    category_ids: npt.NDArray[np.int64]
    boxes: npt.NDArray[np.float64]
    areas: npt.NDArray[np.float64]
    iscrowd: npt.NDArray[np.bool_]
    ignore: npt.NDArray[np.bool_]
    source: str = "<ground truth>"

    def __post_init__(self) -> None:
        n = len(self.ann_ids)
        for name, dtype, shape in (
            ("ann_ids", np.int64, (n,)),
            ("image_ids", np.int64, (n,)),
            ("category_ids", np.int64, (n,)),
            ("boxes", np.float64, (n, 4)),
            ("areas", np.float64, (n,)),
            ("iscrowd", np.bool_, (n,)),
            ("ignore", np.bool_, (n,)),
        ):
            object.__setattr__(self, name, _column(getattr(self, name), dtype, name, shape))

    def __len__(self) -> int:
        return len(self.ann_ids)


@dataclass(frozen=True)
class CocoDetections:
    """Scored boxes: `boxes` (N, 4) float64 [x, y, w, h] in image pixels, `scores` (N,)."""

    image_ids: npt.NDArray[np.int64]
    category_ids: npt.NDArray[np.int64]
    boxes: npt.NDArray[np.float64]
    scores: npt.NDArray[np.float64]
    source: str = "<detections>"

    def __post_init__(self) -> None:
        n = len(np.asarray(self.scores).reshape(-1))
        for name, dtype, shape in (
            ("image_ids", np.int64, (n,)),
            ("category_ids", np.int64, (n,)),
            ("boxes", np.float64, (n, 4)),
            ("scores", np.float64, (n,)),
        ):
            object.__setattr__(self, name, _column(getattr(self, name), dtype, name, shape))
        if not (np.isfinite(self.boxes).all() and np.isfinite(self.scores).all()):
            raise CocoFormatError(f"{self.source}: boxes and scores must be finite numbers")
        if (self.boxes[:, 2:] < 0).any():
            raise CocoFormatError(f"{self.source}: box width and height must not be negative")

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def from_detections(
        cls, image_id: int, detections: Detections, category_ids: Sequence[int]
    ) -> CocoDetections:
        """One image's `Detections` (xyxy, class indices) with class i as `category_ids[i]`."""
        if len(detections) and detections.class_ids.max() >= len(category_ids):
            raise CocoFormatError(
                f"class id {detections.class_ids.max()}: expected < {len(category_ids)} "
                "(the number of category ids given)"
            )
        xyxy = detections.boxes.astype(np.float64)
        xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        cats = np.asarray(category_ids, np.int64)[detections.class_ids]
        n = len(detections)
        scores = detections.scores.astype(np.float64)
        return cls(np.full(n, image_id, np.int64), cats, xywh, scores, "<detector>")

    @classmethod
    def concatenate(cls, parts: Sequence[CocoDetections]) -> CocoDetections:
        if not parts:
            none = np.zeros(0, np.int64)
            return cls(none, none, np.zeros((0, 4)), np.zeros(0))
        return cls(
            np.concatenate([p.image_ids for p in parts]),
            np.concatenate([p.category_ids for p in parts]),
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
            parts[0].source if len(parts) == 1 else "<detections>",
        )


# ----------------------------------------------------------------------------- fields


def _show(value: Any) -> str:
    """A value as the file spells it, cut to 60 characters."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _get(record: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in record:
        raise CocoFormatError(f"{where}: missing '{key}'")
    return record[key]


def _int(record: Mapping[str, Any], key: str, where: str) -> int:
    value = _get(record, key, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CocoFormatError(f"{where}: '{key}': expected an integer, got {_show(value)}")
    return value


def _number(record: Mapping[str, Any], key: str, where: str) -> float:
    value = _get(record, key, where)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CocoFormatError(f"{where}: '{key}': expected a number, got {_show(value)}")
    if not math.isfinite(value):
        raise CocoFormatError(f"{where}: '{key}': expected a finite number, got {value}")
    return float(value)


def _flag(record: Mapping[str, Any], key: str, where: str, default: bool | None) -> bool:
    if default is not None and key not in record:
        return default
    value = _get(record, key, where)
    if value not in (0, 1) or not isinstance(value, int):
        raise CocoFormatError(f"{where}: '{key}': expected 0 or 1, got {_show(value)}")
    return bool(value)


def _box(record: Mapping[str, Any], where: str) -> tuple[float, float, float, float]:
    value = _get(record, "bbox", where)
    if (
        not isinstance(value, list)
        or len(value) != 4
        or any(isinstance(v, bool) or not isinstance(v, int | float) for v in value)
    ):
        raise CocoFormatError(f"{where}: 'bbox': expected [x, y, w, h] numbers, got {_show(value)}")
    x, y, w, h = (float(v) for v in value)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise CocoFormatError(f"{where}: 'bbox': expected finite numbers, got {_show(value)}")
    if w < 0 or h < 0:
        raise CocoFormatError(f"{where}: 'bbox': negative width or height in {_show(value)}")
    return x, y, w, h


def _inside(
    box: tuple[float, float, float, float], image: CocoImage, tol: float, where: str
) -> None:
    x, y, w, h = box
    if x < -tol or y < -tol or x + w > image.width + tol or y + h > image.height + tol:
        raise CocoFormatError(
            f"{where}: 'bbox' {_show(list(box))} lies outside image {image.id} "
            f"({image.width}x{image.height}, tolerance {tol:g} px)"
        )


def _records(doc: Mapping[str, Any], key: str, source: str, limit: int) -> list[Any]:
    value = _get(doc, key, source)
    if not isinstance(value, list):
        raise CocoFormatError(f"{source}: '{key}': expected a list, got {type(value).__name__}")
    if len(value) > limit:
        raise CocoTooLargeError(f"{source}: '{key}': {len(value)} records, limit {limit}")
    return value


def _record(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise CocoFormatError(f"{where}: expected an object, got {_show(value)}")
    return value


def _where(source: str, section: str, index: int, record: Mapping[str, Any]) -> str:
    ident = record.get("id")
    known = isinstance(ident, int | str) and not isinstance(ident, bool)
    return f"{source}: {section}[{index}]" + (f" (id {ident})" if known else "")


# ----------------------------------------------------------------------------- parsing


def parse_ground_truth(
    doc: Any, source: str = "<ground truth>", limits: CocoLimits | None = None
) -> CocoGroundTruth:
    """Validate a decoded COCO ground-truth document. Raises CocoDataError subclasses."""
    limits = limits or CocoLimits()
    doc = _record(doc, source)
    images: dict[int, CocoImage] = {}
    for i, raw in enumerate(_records(doc, "images", source, limits.max_images)):
        where = _where(source, "images", i, _record(raw, f"{source}: images[{i}]"))
        image_id = _int(raw, "id", where)
        width, height = _int(raw, "width", where), _int(raw, "height", where)
        if width <= 0 or height <= 0:
            raise CocoFormatError(
                f"{where}: expected positive width and height, got {width}x{height}"
            )
        name = raw.get("file_name", "")
        attributes = raw.get("attributes", {})
        if not isinstance(name, str) or not isinstance(attributes, dict):
            raise CocoFormatError(f"{where}: expected 'file_name' a string, 'attributes' an object")
        if image_id in images:
            raise CocoReferenceError(f"{where}: duplicate image id {image_id}")
        images[image_id] = CocoImage(image_id, width, height, name, attributes)
    categories: dict[int, CocoCategory] = {}
    for i, raw in enumerate(_records(doc, "categories", source, limits.max_categories)):
        where = _where(source, "categories", i, _record(raw, f"{source}: categories[{i}]"))
        cat_id, name = _int(raw, "id", where), _get(raw, "name", where)
        superc = raw.get("supercategory", "")
        if not isinstance(name, str) or not isinstance(superc, str):
            raise CocoFormatError(f"{where}: expected 'name' and 'supercategory' strings")
        if cat_id in categories:
            raise CocoReferenceError(f"{where}: duplicate category id {cat_id}")
        categories[cat_id] = CocoCategory(cat_id, name, superc)
    anns = _records(doc, "annotations", source, limits.max_annotations)
    ids, img_ids, cat_ids, boxes, areas, crowd, ignore = [], [], [], [], [], [], []
    seen: set[int] = set()
    for i, raw in enumerate(anns):
        where = _where(source, "annotations", i, _record(raw, f"{source}: annotations[{i}]"))
        ann_id = _int(raw, "id", where)
        if ann_id < 1:
            # pycocotools marks "unmatched" with id 0, so an annotation id 0 would never match.
            raise CocoFormatError(f"{where}: 'id': expected a positive integer, got {ann_id}")
        if ann_id in seen:
            raise CocoReferenceError(f"{where}: duplicate annotation id {ann_id}")
        seen.add(ann_id)
        image_id, cat_id = _int(raw, "image_id", where), _int(raw, "category_id", where)
        if image_id not in images:
            raise CocoReferenceError(f"{where}: 'image_id' {image_id} is not in 'images'")
        if cat_id not in categories:
            raise CocoReferenceError(f"{where}: 'category_id' {cat_id} is not in 'categories'")
        box = _box(raw, where)
        _inside(box, images[image_id], limits.box_tolerance_px, where)
        area = _number(raw, "area", where)
        if area < 0:
            raise CocoFormatError(f"{where}: 'area': expected >= 0, got {area}")
        ids.append(ann_id)
        img_ids.append(image_id)
        cat_ids.append(cat_id)
        boxes.append(box)
        areas.append(area)
        crowd.append(_flag(raw, "iscrowd", where, None))
        ignore.append(_flag(raw, "ignore", where, False))
    return CocoGroundTruth(
        tuple(images.values()),
        tuple(categories.values()),
        np.array(ids, np.int64),
        np.array(img_ids, np.int64),
        np.array(cat_ids, np.int64),
        np.array(boxes, np.float64).reshape(-1, 4),
        np.array(areas, np.float64),
        np.array(crowd, np.bool_),
        np.array(ignore, np.bool_),
        source,
    )


def parse_detections(
    doc: Any,
    ground_truth: CocoGroundTruth,
    source: str = "<detections>",
    limits: CocoLimits | None = None,
) -> CocoDetections:
    """Validate decoded COCO results against their ground truth. Raises CocoDataError subclasses."""
    limits = limits or CocoLimits()
    if not isinstance(doc, list):
        raise CocoFormatError(f"{source}: expected a list of results, got {type(doc).__name__}")
    if len(doc) > limits.max_detections:
        raise CocoTooLargeError(f"{source}: {len(doc)} results, limit {limits.max_detections}")
    images = {image.id: image for image in ground_truth.images}
    categories = {c.id for c in ground_truth.categories}
    img_ids, cat_ids, boxes, scores = [], [], [], []
    for i, raw in enumerate(doc):
        where = f"{source}: results[{i}]"
        _record(raw, where)
        image_id, cat_id = _int(raw, "image_id", where), _int(raw, "category_id", where)
        if image_id not in images:
            raise CocoReferenceError(
                f"{where}: 'image_id' {image_id} is not in {ground_truth.source}"
            )
        if cat_id not in categories:
            raise CocoReferenceError(
                f"{where}: 'category_id' {cat_id} is not in {ground_truth.source}"
            )
        box = _box(raw, where)
        _inside(box, images[image_id], limits.box_tolerance_px, where)
        img_ids.append(image_id)
        cat_ids.append(cat_id)
        boxes.append(box)
        scores.append(_number(raw, "score", where))
    return CocoDetections(
        np.array(img_ids, np.int64),
        np.array(cat_ids, np.int64),
        np.array(boxes, np.float64).reshape(-1, 4),
        np.array(scores, np.float64),
        source,
    )


def read_json(path: Path, limits: CocoLimits | None = None) -> Any:
    """Decode a JSON file no larger than the limit. Raises CocoDataError subclasses."""
    limits = limits or CocoLimits()
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise CocoTooLargeError(f"{path}: {size} bytes, limit {limits.max_file_bytes} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise CocoDataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise CocoFormatError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise CocoFormatError(
            f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise CocoFormatError(f"{path}: not valid JSON: nested too deeply") from exc


def load_ground_truth(path: Path, limits: CocoLimits | None = None) -> CocoGroundTruth:
    """Read and validate a COCO ground-truth file."""
    return parse_ground_truth(read_json(path, limits), str(path), limits)


def load_detections(
    path: Path, ground_truth: CocoGroundTruth, limits: CocoLimits | None = None
) -> CocoDetections:
    """Read and validate a COCO results file against its ground truth."""
    return parse_detections(read_json(path, limits), ground_truth, str(path), limits)
