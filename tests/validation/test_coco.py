"""Loading COCO files: valid ones become arrays, each malformed input a clear refusal."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.errors import BadInputError
from edge.frames import Detections
from edge.validation.coco import (
    CocoDataError,
    CocoDetections,
    CocoFormatError,
    CocoLimits,
    CocoReferenceError,
    CocoTooLargeError,
    load_detections,
    load_ground_truth,
    parse_detections,
    parse_ground_truth,
)

GT: dict[str, Any] = {
    "images": [
        {
            "id": 10,
            "width": 100,
            "height": 80,
            "file_name": "a.png",
            "attributes": {"view": "side"},
        },
        {"id": 11, "width": 50, "height": 50},
    ],
    "annotations": [
        {
            "id": 1,
            "image_id": 10,
            "category_id": 3,
            "bbox": [10, 10, 20, 30],
            "area": 600,
            "iscrowd": 0,
        },
        {
            "id": 2,
            "image_id": 11,
            "category_id": 4,
            "bbox": [0.5, 0, 49.5, 50.5],
            "area": 2000.0,
            "iscrowd": 1,
            "ignore": 1,
        },
    ],
    "categories": [{"id": 3, "name": "gun", "supercategory": "threat"}, {"id": 4, "name": "knife"}],
}
RESULTS: list[dict[str, Any]] = [
    {"image_id": 10, "category_id": 3, "bbox": [11, 10, 20, 30], "score": 0.9},
    {"image_id": 11, "category_id": 4, "bbox": [0, 0, 10, 10], "score": 1},
]


def test_valid_files_load_as_columns(tmp_path: Path) -> None:
    (tmp_path / "gt.json").write_text(json.dumps(GT))
    (tmp_path / "dt.json").write_text(json.dumps(RESULTS))
    gt = load_ground_truth(tmp_path / "gt.json")
    assert gt.source == str(tmp_path / "gt.json") and len(gt) == 2
    assert [im.id for im in gt.images] == [10, 11] and gt.images[0].attributes == {"view": "side"}
    assert [(c.id, c.name, c.supercategory) for c in gt.categories] == [
        (3, "gun", "threat"),
        (4, "knife", ""),
    ]
    assert gt.boxes.dtype == np.float64 and gt.boxes.shape == (2, 4)
    assert gt.iscrowd.tolist() == [False, True] and gt.ignore.tolist() == [False, True]
    assert gt.areas.tolist() == [600.0, 2000.0]
    dt = load_detections(tmp_path / "dt.json", gt)
    assert dt.image_ids.tolist() == [10, 11] and dt.scores.tolist() == [0.9, 1.0]
    assert dt.boxes[0].tolist() == [11, 10, 20, 30]
    with pytest.raises(ValueError):
        dt.scores[0] = 0.5  # read-only


def _gt(edit: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    doc = copy.deepcopy(GT)
    edit(doc)
    return doc


def _ann(doc: dict[str, Any], **fields: Any) -> None:
    doc["annotations"][1].update(fields)


GT_CASES: list[tuple[str, Callable[[dict[str, Any]], Any], type[Exception], list[str]]] = [
    ("not an object", lambda d: d.clear() or d.update(x=1), CocoFormatError, ["missing 'images'"]),
    ("no categories", lambda d: d.pop("categories"), CocoFormatError, ["missing 'categories'"]),
    (
        "images not a list",
        lambda d: d.update(images={}),
        CocoFormatError,
        ["'images': expected a list"],
    ),
    (
        "image not an object",
        lambda d: d["images"].append(3),
        CocoFormatError,
        ["images[2]", "expected an object"],
    ),
    (
        "image without id",
        lambda d: d["images"][1].pop("id"),
        CocoFormatError,
        ["images[1]", "missing 'id'"],
    ),
    (
        "image id a string",
        lambda d: d["images"][1].update(id="11"),
        CocoFormatError,
        ["images[1] (id 11)", "'id': expected an integer"],
    ),
    (
        "zero width",
        lambda d: d["images"][1].update(width=0),
        CocoFormatError,
        ["images[1] (id 11)", "positive width"],
    ),
    (
        "duplicate image",
        lambda d: d["images"].append(dict(d["images"][0])),
        CocoReferenceError,
        ["images[2] (id 10)", "duplicate image id 10"],
    ),
    (
        "duplicate category",
        lambda d: d["categories"].append({"id": 3, "name": "x"}),
        CocoReferenceError,
        ["categories[2] (id 3)", "duplicate category id 3"],
    ),
    (
        "category without name",
        lambda d: d["categories"][0].pop("name"),
        CocoFormatError,
        ["categories[0] (id 3)", "missing 'name'"],
    ),
    (
        "duplicate annotation",
        lambda d: _ann(d, id=1),
        CocoReferenceError,
        ["annotations[1] (id 1)", "duplicate annotation id 1"],
    ),
    (
        "annotation id 0",
        lambda d: _ann(d, id=0),
        CocoFormatError,
        ["annotations[1] (id 0)", "positive integer"],
    ),
    (
        "missing bbox",
        lambda d: d["annotations"][1].pop("bbox"),
        CocoFormatError,
        ["annotations[1] (id 2)", "missing 'bbox'"],
    ),
    (
        "bbox of 3",
        lambda d: _ann(d, bbox=[1, 2, 3]),
        CocoFormatError,
        ["annotations[1] (id 2)", "'bbox': expected [x, y, w, h]", "[1, 2, 3]"],
    ),
    (
        "bbox with a string",
        lambda d: _ann(d, bbox=[1, 2, "3", 4]),
        CocoFormatError,
        ["'bbox': expected [x, y, w, h]"],
    ),
    (
        "bbox with NaN",
        lambda d: _ann(d, bbox=[1, 2, float("nan"), 4]),
        CocoFormatError,
        ["annotations[1] (id 2)", "finite"],
    ),
    (
        "bbox with infinity",
        lambda d: _ann(d, bbox=[1, 2, 3, float("inf")]),
        CocoFormatError,
        ["finite"],
    ),
    (
        "negative width",
        lambda d: _ann(d, bbox=[1, 2, -3, 4]),
        CocoFormatError,
        ["annotations[1] (id 2)", "negative width"],
    ),
    (
        "box past the right edge",
        lambda d: _ann(d, bbox=[10, 0, 41.5, 10]),
        CocoFormatError,
        ["annotations[1] (id 2)", "outside image 11", "50x50"],
    ),
    (
        "box left of the image",
        lambda d: _ann(d, bbox=[-1.5, 0, 10, 10]),
        CocoFormatError,
        ["outside image 11"],
    ),
    (
        "area NaN",
        lambda d: _ann(d, area=float("nan")),
        CocoFormatError,
        ["annotations[1] (id 2)", "'area'", "finite"],
    ),
    ("area negative", lambda d: _ann(d, area=-1), CocoFormatError, ["'area': expected >= 0"]),
    (
        "missing area",
        lambda d: d["annotations"][1].pop("area"),
        CocoFormatError,
        ["missing 'area'"],
    ),
    (
        "missing iscrowd",
        lambda d: d["annotations"][1].pop("iscrowd"),
        CocoFormatError,
        ["missing 'iscrowd'"],
    ),
    (
        "iscrowd 2",
        lambda d: _ann(d, iscrowd=2),
        CocoFormatError,
        ["'iscrowd': expected 0 or 1, got 2"],
    ),
    (
        "ignore a string",
        lambda d: _ann(d, ignore="yes"),
        CocoFormatError,
        ["'ignore': expected 0 or 1"],
    ),
    (
        "unknown image",
        lambda d: _ann(d, image_id=99),
        CocoReferenceError,
        ["annotations[1] (id 2)", "'image_id' 99"],
    ),
    (
        "unknown category",
        lambda d: _ann(d, category_id=99),
        CocoReferenceError,
        ["annotations[1] (id 2)", "'category_id' 99"],
    ),
    (
        "boolean category",
        lambda d: _ann(d, category_id=True),
        CocoFormatError,
        ["'category_id': expected an integer, got true"],
    ),
]


@pytest.mark.parametrize(
    ("edit", "error", "fragments"), [c[1:] for c in GT_CASES], ids=[c[0] for c in GT_CASES]
)
def test_malformed_ground_truth_is_refused(
    edit: Callable[[dict[str, Any]], Any], error: type[Exception], fragments: list[str]
) -> None:
    with pytest.raises(error) as caught:
        parse_ground_truth(_gt(edit), "gt.json")
    assert isinstance(caught.value, BadInputError)
    message = str(caught.value)
    assert message.startswith("gt.json: ")
    for fragment in fragments:
        assert fragment in message


def test_a_box_within_one_pixel_of_the_edge_is_accepted() -> None:
    gt = parse_ground_truth(_gt(lambda d: _ann(d, bbox=[-0.9, -1, 50.5, 51])))
    assert gt.boxes[1].tolist() == [-0.9, -1, 50.5, 51]


RESULT_CASES: list[tuple[str, Any, type[Exception], list[str]]] = [
    ("not a list", {"results": []}, CocoFormatError, ["expected a list of results"]),
    ("not an object", [RESULTS[0], "x"], CocoFormatError, ["results[1]", "expected an object"]),
    (
        "null score",
        [{**RESULTS[0], "score": None}],
        CocoFormatError,
        ["results[0]", "'score': expected a number, got null"],
    ),
    (
        "missing score",
        [RESULTS[0], {k: v for k, v in RESULTS[1].items() if k != "score"}],
        CocoFormatError,
        ["results[1]", "missing 'score'"],
    ),
    (
        "NaN score",
        [{**RESULTS[0], "score": float("nan")}],
        CocoFormatError,
        ["results[0]", "'score'", "finite"],
    ),
    (
        "missing bbox",
        [{k: v for k, v in RESULTS[0].items() if k != "bbox"}],
        CocoFormatError,
        ["missing 'bbox'"],
    ),
    (
        "negative height",
        [RESULTS[0], {**RESULTS[1], "bbox": [0, 0, 1, -1]}],
        CocoFormatError,
        ["results[1]", "negative"],
    ),
    (
        "outside the image",
        [{**RESULTS[1], "bbox": [45, 0, 10, 10]}],
        CocoFormatError,
        ["results[0]", "outside image 11"],
    ),
    (
        "unknown image",
        [{**RESULTS[0], "image_id": 12}],
        CocoReferenceError,
        ["results[0]", "'image_id' 12 is not in gt.json"],
    ),
    (
        "unknown category",
        [{**RESULTS[0], "category_id": 5}],
        CocoReferenceError,
        ["results[0]", "'category_id' 5"],
    ),
    (
        "float image id",
        [{**RESULTS[0], "image_id": 10.0}],
        CocoFormatError,
        ["'image_id': expected an integer, got 10.0"],
    ),
]


@pytest.mark.parametrize(
    ("doc", "error", "fragments"), [c[1:] for c in RESULT_CASES], ids=[c[0] for c in RESULT_CASES]
)
def test_malformed_results_are_refused(
    doc: Any, error: type[Exception], fragments: list[str]
) -> None:
    gt = parse_ground_truth(GT, "gt.json")
    with pytest.raises(error) as caught:
        parse_detections(doc, gt, "dt.json")
    message = str(caught.value)
    assert message.startswith("dt.json: ")
    for fragment in fragments:
        assert fragment in message


def test_empty_results_are_valid() -> None:
    assert len(parse_detections([], parse_ground_truth(GT))) == 0


@pytest.mark.parametrize(
    ("content", "error", "fragment"),
    [
        (b'{"images": [', CocoFormatError, "not valid JSON"),
        (b"\xff\xfe{}", CocoFormatError, "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, CocoFormatError, "not valid JSON"),
    ],
    ids=["truncated", "binary", "deeply nested"],
)
def test_unreadable_files(
    tmp_path: Path, content: bytes, error: type[Exception], fragment: str
) -> None:
    path = tmp_path / "gt.json"
    path.write_bytes(content)
    with pytest.raises(error, match=fragment) as caught:
        load_ground_truth(path)
    assert str(path) in str(caught.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CocoDataError, match="cannot read"):
        load_ground_truth(tmp_path / "absent.json")


def test_limits(tmp_path: Path) -> None:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(GT))
    with pytest.raises(CocoTooLargeError, match="bytes, limit 100 bytes"):
        load_ground_truth(path, CocoLimits(max_file_bytes=100))
    with pytest.raises(CocoTooLargeError, match="'annotations': 2 records, limit 1"):
        load_ground_truth(path, CocoLimits(max_annotations=1))
    with pytest.raises(CocoTooLargeError, match="2 results, limit 1"):
        parse_detections(RESULTS, parse_ground_truth(GT), limits=CocoLimits(max_detections=1))
    strict = CocoLimits(box_tolerance_px=0.0)
    with pytest.raises(CocoFormatError, match="tolerance 0 px"):
        parse_ground_truth(GT, limits=strict)


def test_detections_arrays_are_checked() -> None:
    with pytest.raises(CocoFormatError, match="boxes: expected shape"):
        CocoDetections(np.array([1]), np.array([1]), np.zeros((1, 3)), np.array([0.5]))
    with pytest.raises(CocoFormatError, match="finite"):
        CocoDetections(np.array([1]), np.array([1]), np.zeros((1, 4)), np.array([np.nan]))


def test_from_edge_detections() -> None:
    det = Detections(np.array([[10, 20, 40, 60]]), np.array([0.75]), np.array([1]))
    coco = CocoDetections.from_detections(7, det, [3, 4])
    assert coco.image_ids.tolist() == [7] and coco.category_ids.tolist() == [4]
    assert coco.boxes.tolist() == [[10, 20, 30, 40]] and coco.scores.tolist() == [0.75]
