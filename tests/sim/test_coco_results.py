"""The synthetic evaluation data: deterministic by seed, valid COCO, every knob visible."""

from __future__ import annotations

from edge.sim.coco_results import EvalDataSpec, generate_eval_data
from edge.validation.coco import parse_detections, parse_ground_truth


def test_same_seed_same_data_and_files_that_load() -> None:
    spec = EvalDataSpec(images=30, crowd_rate=0.2, ignore_rate=0.2, tiny_rate=0.3)
    doc, results = generate_eval_data(spec, 4)
    assert (doc, results) == generate_eval_data(spec, 4)
    assert (doc, results) != generate_eval_data(spec, 5)
    gt = parse_ground_truth(doc)
    assert len(parse_detections(results, gt)) == len(results) > 0
    assert gt.iscrowd.any() and gt.ignore.any()


def test_knobs() -> None:
    doc, results = generate_eval_data(
        EvalDataSpec(images=20, classes_without_gt=2, undeclared_rate=0.5, crowded_images=1), 1
    )
    cats = sorted(c["id"] for c in doc["categories"])
    assert {a["category_id"] for a in doc["annotations"]} <= set(cats[:-2])
    assert {r["category_id"] for r in results} - set(cats)  # some undeclared
    per_image: dict[int, int] = {}
    for r in results:
        per_image[r["image_id"]] = per_image.get(r["image_id"], 0) + 1
    assert max(per_image.values()) > 100
