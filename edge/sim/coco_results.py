"""Synthetic COCO ground truth with scored detections around it, for evaluator tests and
benchmarks: each case pycocotools treats specially is a knob of `EvalDataSpec`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class EvalDataSpec:
    images: int = 50
    categories: int = 5
    gt_per_image: float = 3.0  # Poisson mean
    dets_per_gt: float = 1.3  # detections around each ground truth, Poisson mean
    false_positives: float = 1.0  # detections anywhere, per image, Poisson mean
    crowd_rate: float = 0.0
    ignore_rate: float = 0.0  # `ignore: 1` on regular boxes
    empty_image_rate: float = 0.0  # images with neither ground truth nor detections
    classes_without_gt: int = 0  # the last n categories get detections but no ground truth
    undeclared_rate: float = 0.0  # detections whose category the ground truth lacks
    tiny_rate: float = 0.0  # boxes of 0-4 px a side
    area_from_segmentation: bool = False  # `area` below w * h, as for masks
    score_decimals: int | None = None  # rounded scores tie
    integer_boxes: bool = False  # integer coordinates make IoU ties
    duplicate_gt_rate: float = 0.0  # exact duplicate ground-truth boxes
    crowded_images: int = 0  # images with 110-250 detections of one category
    max_side: int = 1024


def _box(rng: np.random.Generator, spec: EvalDataSpec, width: int, height: int) -> list[float]:
    if rng.random() < spec.tiny_rate:
        w, h = rng.uniform(0, 4, 2)
    else:
        side = np.exp(rng.uniform(np.log(3), np.log(0.9 * min(width, height)), 2))
        w, h = side
    x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
    return _clean([x, y, w, h], spec, width, height)


def _clean(box: list[float], spec: EvalDataSpec, width: int, height: int) -> list[float]:
    """Clip an xywh box into the image and round it (2 decimals, or integers)."""
    x1, y1 = np.clip(box[0], 0, width), np.clip(box[1], 0, height)
    x2, y2 = np.clip(box[0] + box[2], x1, width), np.clip(box[1] + box[3], y1, height)
    if spec.integer_boxes:
        x1, y1, x2, y2 = np.floor(x1), np.floor(y1), np.ceil(x2), np.ceil(y2)
        x2, y2 = min(x2, width), min(y2, height)
        return [int(x1), int(y1), int(x2 - x1), int(y2 - y1)]
    x1, y1 = round(float(x1), 2), round(float(y1), 2)
    w = round(min(float(x2) - x1, width - x1), 2)
    h = round(min(float(y2) - y1, height - y1), 2)
    return [x1, y1, max(w, 0.0), max(h, 0.0)]


def _jitter(
    rng: np.random.Generator, box: list[float], spec: EvalDataSpec, size: tuple[int, int]
) -> list[float]:
    sigma = rng.choice([0.01, 0.05, 0.1, 0.2, 0.4])
    x, y, w, h = box
    dx, dy, dw, dh = rng.normal(0, sigma, 4) * [w, h, w, h]
    return _clean([x + dx, y + dy, w + dw, h + dh], spec, *size)


def _score(rng: np.random.Generator, spec: EvalDataSpec, good: bool) -> float:
    score = rng.beta(4, 2) if good else rng.beta(1.5, 4)
    return (
        round(float(score), spec.score_decimals)
        if spec.score_decimals is not None
        else float(score)
    )


def generate_eval_data(
    spec: EvalDataSpec, seed: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A COCO ground-truth document and a results list (shuffled, ids non-contiguous)."""
    rng = np.random.default_rng(seed)
    cat_ids = sorted(
        rng.choice(np.arange(1, 10 * spec.categories + 1), spec.categories, replace=False).tolist()
    )
    with_gt = cat_ids[: spec.categories - spec.classes_without_gt]
    undeclared = max(cat_ids) + 1
    image_ids = rng.choice(np.arange(1, 20 * spec.images + 1), spec.images, replace=False).tolist()
    images, annotations, results = [], [], []
    crowded = set(
        rng.choice(len(image_ids), min(spec.crowded_images, len(image_ids)), replace=False).tolist()
    )
    for i, image_id in enumerate(image_ids):
        width, height = (int(v) for v in rng.integers(48, spec.max_side + 1, 2))
        images.append(
            {"id": image_id, "width": width, "height": height, "file_name": f"{image_id}.png"}
        )
        if rng.random() < spec.empty_image_rate:
            continue
        n_gt = int(rng.poisson(spec.gt_per_image)) if with_gt else 0
        n_gt += 30 if i in crowded and with_gt else 0
        boxes: list[tuple[int, list[float]]] = []
        for _ in range(n_gt):
            cat = int(rng.choice(with_gt)) if i not in crowded else with_gt[0]
            box = _box(rng, spec, width, height)
            boxes.append((cat, box))
            if rng.random() < spec.duplicate_gt_rate:
                boxes.append((cat, list(box)))
        for cat, box in boxes:
            crowd = rng.random() < spec.crowd_rate
            area = box[2] * box[3] * (rng.uniform(0.4, 1.0) if spec.area_from_segmentation else 1.0)
            ann = {
                "image_id": image_id,
                "category_id": cat,
                "bbox": box,
                "area": area,
                "iscrowd": int(crowd),
            }
            if rng.random() < spec.ignore_rate:
                ann["ignore"] = 1
            annotations.append(ann)
            for _ in range(int(rng.poisson(spec.dets_per_gt))):
                det_cat = cat if rng.random() > 0.1 else int(rng.choice(cat_ids))
                det = _jitter(rng, box, spec, (width, height))
                results.append(_result(image_id, det_cat, det, _score(rng, spec, True)))
        n_fp = int(rng.poisson(spec.false_positives)) + (
            int(rng.integers(110, 250)) if i in crowded else 0
        )
        for _ in range(n_fp):
            cat = (
                int(rng.choice(cat_ids))
                if i not in crowded
                else with_gt[0]
                if with_gt
                else cat_ids[0]
            )
            if rng.random() < spec.undeclared_rate:
                cat = undeclared
            near = boxes[int(rng.integers(len(boxes)))][1] if boxes and rng.random() < 0.5 else None
            box = (
                _jitter(rng, near, spec, (width, height))
                if near
                else _box(rng, spec, width, height)
            )
            results.append(_result(image_id, cat, box, _score(rng, spec, False)))
    ann_ids = rng.choice(np.arange(1, 3 * len(annotations) + 2), len(annotations), replace=False)
    for ann, ann_id in zip(annotations, ann_ids.tolist(), strict=True):
        ann["id"] = ann_id
    order = rng.permutation(len(annotations)).tolist()
    categories = [{"id": c, "name": f"class{c}", "supercategory": "threat"} for c in cat_ids]
    doc = {
        "images": [images[j] for j in rng.permutation(len(images)).tolist()],
        "annotations": [annotations[j] for j in order],
        "categories": [categories[j] for j in rng.permutation(len(categories)).tolist()],
    }
    return doc, [results[j] for j in rng.permutation(len(results)).tolist()]


def _result(image_id: int, cat: int, box: list[float], score: float) -> dict[str, Any]:
    return {"image_id": image_id, "category_id": cat, "bbox": box, "score": score}
