"""CocoEvaluator against pycocotools, figure for figure, on generated and hand-made data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.errors import BadInputError
from edge.sim.coco_results import EvalDataSpec, generate_eval_data
from edge.validation.coco import CocoReferenceError, parse_ground_truth
from edge.validation.coco_metrics import RECALL_THRESHOLDS, STAT_NAMES
from edge.validation.cocoeval import CocoEvaluator

from .conftest import assert_same_as_pycocotools, detections_from, our_eval, reference_eval

EVERYTHING = EvalDataSpec(
    crowd_rate=0.15,
    ignore_rate=0.15,
    empty_image_rate=0.2,
    classes_without_gt=1,
    undeclared_rate=0.1,
    tiny_rate=0.2,
    area_from_segmentation=True,
    score_decimals=2,
    duplicate_gt_rate=0.1,
    crowded_images=2,
)

DATA_SETS: list[tuple[str, EvalDataSpec, int]] = [
    ("default", EvalDataSpec(), 0),
    ("crowd boxes", EvalDataSpec(crowd_rate=0.3), 1),
    ("ignore flags (pycocotools overwrites them)", EvalDataSpec(ignore_rate=0.3), 2),
    ("score ties, 1 decimal", EvalDataSpec(score_decimals=1), 3),
    ("score ties, scores 0 or 1", EvalDataSpec(score_decimals=0), 4),
    (">100 detections per image and class", EvalDataSpec(images=12, crowded_images=4), 5),
    ("empty images", EvalDataSpec(empty_image_rate=0.5), 6),
    ("classes without ground truth", EvalDataSpec(classes_without_gt=2), 7),
    ("undeclared detection classes", EvalDataSpec(undeclared_rate=0.3), 8),
    ("tiny boxes", EvalDataSpec(tiny_rate=0.5), 9),
    ("area field below box area", EvalDataSpec(area_from_segmentation=True), 10),
    (
        "integer boxes, duplicate ground truths",
        EvalDataSpec(integer_boxes=True, duplicate_gt_rate=0.3),
        11,
    ),
    ("one class", EvalDataSpec(categories=1, gt_per_image=4), 12),
    ("sparse ground truth", EvalDataSpec(gt_per_image=0.3), 13),
    ("dense ground truth", EvalDataSpec(images=20, gt_per_image=12), 14),
    ("duplicate detections", EvalDataSpec(dets_per_gt=4), 15),
    ("mostly false positives", EvalDataSpec(false_positives=8), 16),
    ("small images: small and medium areas", EvalDataSpec(max_side=96), 17),
    ("large images: large areas", EvalDataSpec(max_side=2000), 18),
    ("everything, seed 19", EVERYTHING, 19),
    ("everything, seed 20", EVERYTHING, 20),
    (
        "everything, integer boxes",
        EvalDataSpec(**{**EVERYTHING.__dict__, "integer_boxes": True}),
        21,
    ),
    ("crowds among crowded images", EvalDataSpec(crowd_rate=0.3, crowded_images=5), 22),
    ("one image", EvalDataSpec(images=1, gt_per_image=8, dets_per_gt=3), 23),
    ("many classes", EvalDataSpec(categories=12, gt_per_image=6), 24),
]


@pytest.mark.parametrize(
    ("spec", "seed"), [c[1:] for c in DATA_SETS], ids=[c[0] for c in DATA_SETS]
)
def test_equals_pycocotools(spec: EvalDataSpec, seed: int) -> None:
    doc, results = generate_eval_data(spec, seed)
    ours, ref = our_eval(doc, results), reference_eval(doc, results)
    assert_same_as_pycocotools(ours, ref)
    assert ours.evaluated_detection_count > 0 and ours.stats[0] > 0  # not a vacuous case


def test_the_data_sets_reach_every_case() -> None:
    """The table above does exercise what it names."""
    seen: dict[str, int] = dict.fromkeys(
        ["crowd", "ignore", "over100", "empty", "tie", "small", "medium", "large"], 0
    )
    for _, spec, seed in DATA_SETS:
        doc, results = generate_eval_data(spec, seed)
        anns = doc["annotations"]
        seen["crowd"] += sum(a["iscrowd"] for a in anns)
        seen["ignore"] += sum(a.get("ignore", 0) for a in anns)
        areas = np.array([a["area"] for a in anns])
        seen["small"] += int((areas < 32**2).sum())
        seen["medium"] += int(((areas >= 32**2) & (areas <= 96**2)).sum())
        seen["large"] += int((areas > 96**2).sum())
        per_problem: dict[tuple[int, int], list[float]] = {}
        for r in results:
            per_problem.setdefault((r["image_id"], r["category_id"]), []).append(r["score"])
        seen["over100"] += sum(len(s) > 100 for s in per_problem.values())
        seen["tie"] += sum(len(s) != len(set(s)) for s in per_problem.values())
        used = {a["image_id"] for a in anns} | {r["image_id"] for r in results}
        seen["empty"] += sum(im["id"] not in used for im in doc["images"])
    assert all(count > 0 for count in seen.values()), seen


# ----------------------------------------------------------------------------- hypothesis

_box = st.tuples(st.integers(0, 14), st.integers(0, 14), st.integers(0, 6), st.integers(0, 6)).map(
    lambda b: [b[0], b[1], b[2], b[3]]
)


@st.composite
def small_data_sets(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    n_images, n_cats = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    images = [{"id": i + 1, "width": 20, "height": 20} for i in range(n_images)]
    categories = [{"id": c + 1, "name": f"c{c + 1}"} for c in range(n_cats)]
    annotations = []
    for k, (image, cat, box, crowd, area) in enumerate(
        draw(
            st.lists(
                st.tuples(
                    st.integers(1, n_images),
                    st.integers(1, n_cats),
                    _box,
                    st.booleans(),
                    st.sampled_from([None, 10.0, 1024.0, 1025.0, 9216.0, 9217.0]),
                ),
                max_size=8,
            )
        )
    ):
        annotations.append(
            {
                "id": k + 1,
                "image_id": image,
                "category_id": cat,
                "bbox": box,
                "area": box[2] * box[3] if area is None else area,
                "iscrowd": int(crowd),
            }
        )
    results = [
        {"image_id": image, "category_id": cat, "bbox": box, "score": score}
        for image, cat, box, score in draw(
            st.lists(
                st.tuples(
                    st.integers(1, n_images),
                    st.integers(1, n_cats + 1),  # n_cats + 1: undeclared, dropped
                    _box,
                    st.sampled_from([0.1, 0.5, 0.5, 0.9, 1.0]),
                ),
                min_size=1,  # pycocotools cannot load an empty results list
                max_size=12,
            )
        )
    ]
    return {"images": images, "annotations": annotations, "categories": categories}, results


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_data_sets())
def test_small_random_data_sets_equal_pycocotools(data: tuple[dict[str, Any], list[Any]]) -> None:
    doc, results = data
    assert_same_as_pycocotools(our_eval(doc, results), reference_eval(doc, results))


# ----------------------------------------------------------------------------- cases

IMAGES = [{"id": 1, "width": 200, "height": 200}, {"id": 2, "width": 200, "height": 200}]
CATS = [{"id": 1, "name": "gun"}, {"id": 2, "name": "knife"}]


def _ann(
    ann_id: int, box: list[float], cat: int = 1, image: int = 1, **extra: Any
) -> dict[str, Any]:
    return {
        "id": ann_id,
        "image_id": image,
        "category_id": cat,
        "bbox": box,
        "area": box[2] * box[3],
        "iscrowd": 0,
        **extra,
    }


def _det(box: list[float], score: float, cat: int = 1, image: int = 1) -> dict[str, Any]:
    return {"image_id": image, "category_id": cat, "bbox": box, "score": score}


def test_a_crowd_box_absorbs_any_number_of_detections() -> None:
    doc = {
        "images": IMAGES,
        "categories": CATS,
        "annotations": [_ann(1, [0, 0, 100, 100], iscrowd=1), _ann(2, [150, 150, 40, 40])],
    }
    results = [_det([10 * i, 10, 30, 30], 0.9 - i / 100) for i in range(5)]
    results.append(_det([150, 150, 40, 40], 0.5))
    ours = our_eval(doc, results)
    assert_same_as_pycocotools(ours, reference_eval(doc, results))
    assert ours.stats[1] == pytest.approx(1.0)  # the five inside the crowd are not false positives
    evaluator = CocoEvaluator(parse_ground_truth(doc))
    evaluator.update(detections_from(results))
    evidence = evaluator.evidence(0.5, 0.0)[0]
    assert len(evidence.ignored) == 5 and {e.annotation_id for e in evidence.ignored} == {1}
    assert len(evidence.true_positives) == 1 and not evidence.false_positives


def test_the_ignore_field_counts_only_when_asked() -> None:
    """pycocotools' _prepare overwrites `ignore` with `iscrowd`; so do we by default."""
    doc = {"images": IMAGES, "categories": CATS, "annotations": [_ann(1, [0, 0, 50, 50], ignore=1)]}
    results = [_det([0, 0, 50, 50], 0.9)]
    ours = our_eval(doc, results)
    assert_same_as_pycocotools(ours, reference_eval(doc, results))
    assert ours.stats[0] == pytest.approx(1.0)
    honoured = our_eval(doc, results, honour_ignore_flag=True)
    assert honoured.stats[0] == -1  # the only ground truth is ignored: nothing to find


def test_no_detections_at_all() -> None:
    doc, _ = generate_eval_data(EvalDataSpec(images=10), 3)
    ours = our_eval(doc, [])
    # pycocotools cannot load an empty list; one detection of an undeclared class is the same.
    lone = [_det([0, 0, 5, 5], 0.5, cat=10_000, image=doc["images"][0]["id"])]
    assert_same_as_pycocotools(ours, reference_eval(doc, lone))
    assert ours.evaluated_detection_count == 0 and ours.stats[0] == 0.0


def test_no_ground_truth_at_all() -> None:
    doc = {"images": IMAGES, "categories": CATS, "annotations": []}
    results = [_det([0, 0, 50, 50], 0.9), _det([10, 10, 50, 50], 0.8, cat=2, image=2)]
    ours = our_eval(doc, results)
    assert_same_as_pycocotools(ours, reference_eval(doc, results))
    assert ours.stats == (-1.0,) * 12
    assert (ours.precision == -1).all() and (ours.recall == -1).all()


def test_per_class_figures_and_curves_come_from_the_same_arrays() -> None:
    doc, results = generate_eval_data(EvalDataSpec(classes_without_gt=1), 31)
    ours, ref = our_eval(doc, results), reference_eval(doc, results)
    precision = ref.eval["precision"]
    for k, c in enumerate(ours.per_class):
        s = precision[:, :, k, 0, 2]
        assert c.ap == (float(np.mean(s[s > -1])) if (s > -1).any() else -1)
        s50 = precision[0, :, k, 0, 2]
        assert c.ap50 == (float(np.mean(s50[s50 > -1])) if (s50 > -1).any() else -1)
        curve = ours.pr_curves[k]
        np.testing.assert_array_equal(curve.precision, s50)
        np.testing.assert_array_equal(curve.scores, ref.eval["scores"][0, :, k, 0, 2])
        assert curve.recall_thresholds is RECALL_THRESHOLDS
        if c.gt_count:
            assert len(curve.raw_recall) == c.detection_count
            assert np.all(np.diff(curve.raw_scores) <= 0)
    assert ours.per_class[-1].ap == -1 and ours.per_class[-1].gt_count == 0
    assert list(ours.named_stats) == list(STAT_NAMES)
    with pytest.raises(ValueError):
        ours.precision[0, 0, 0, 0, 0] = 1.0  # read-only


def test_evidence_agrees_with_recall_at_each_threshold() -> None:
    doc, results = generate_eval_data(EVERYTHING, 41)
    evaluator = CocoEvaluator(parse_ground_truth(doc))
    evaluator.update(detections_from(results))
    metrics = evaluator.compute()
    for t, iou in ((0, 0.5), (5, 0.75)):
        evidence = evaluator.evidence(iou, score_threshold=-1.0)
        for k, c in enumerate(metrics.per_class):
            tps = sum(
                1 for im in evidence for e in im.true_positives if e.category_id == c.category_id
            )
            fns = sum(
                1 for im in evidence for e in im.false_negatives if e.category_id == c.category_id
            )
            if tps + fns:
                assert metrics.recall[t, k, 0, 2] == tps / (tps + fns)
            for im in evidence:
                for e in im.true_positives:
                    assert e.iou >= iou and e.annotation_id is not None and e.detection is not None


def test_evidence_on_one_image() -> None:
    doc = {
        "images": IMAGES,
        "categories": CATS,
        "annotations": [_ann(7, [0, 0, 100, 100]), _ann(8, [120, 120, 50, 50])],
    }
    results = [
        _det([0, 0, 100, 90], 0.9),  # matches 7, IoU 0.9
        _det([0, 0, 100, 80], 0.8),  # a duplicate: false positive, best IoU 0.8 with 7
        _det([120, 120, 50, 50], 0.1),  # would match 8, but under the score threshold
        _det([150, 0, 20, 20], 0.7, cat=2),  # overlaps nothing
    ]
    evaluator = CocoEvaluator(parse_ground_truth(doc))
    evaluator.update(detections_from(results))
    first, second = evaluator.evidence(0.5, score_threshold=0.5)
    assert second.image_id == 2 and not (second.true_positives or second.false_positives)
    (tp,) = first.true_positives
    assert (tp.detection, tp.annotation_id, tp.iou, tp.score) == (0, 7, pytest.approx(0.9), 0.9)
    assert tp.det_box == (0, 0, 100, 90) and tp.gt_box == (0, 0, 100, 100)
    fp1, fp2 = sorted(first.false_positives, key=lambda e: -(e.score or 0))
    assert (fp1.detection, fp1.annotation_id, fp1.iou) == (1, 7, pytest.approx(0.8))
    assert (fp2.detection, fp2.annotation_id, fp2.iou, fp2.category_id) == (3, None, 0.0, 2)
    (fn,) = first.false_negatives
    assert (fn.annotation_id, fn.detection, fn.iou) == (8, None, 0.0)
    with pytest.raises(BadInputError, match="IoU"):
        evaluator.evidence(0.0)


def test_updates_add_up_and_unknown_images_are_refused() -> None:
    doc, results = generate_eval_data(EvalDataSpec(), 51)
    once = our_eval(doc, results)
    evaluator = CocoEvaluator(parse_ground_truth(doc))
    for part in (results[:10], results[10:11], results[11:]):
        evaluator.update(detections_from(part))
    assert evaluator.compute().stats == once.stats
    with pytest.raises(CocoReferenceError, match="image_id 999999"):
        evaluator.update(detections_from([_det([0, 0, 1, 1], 0.5, image=999_999)]))
