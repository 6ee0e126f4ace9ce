"""The regression test end to end on 48 simulated bags with the demo model and edited
copies of it: a degraded model fails and is named, the demo model does not regress
against itself, and a small random change on a small slice is called noise."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest

from edge.detector import Detector
from edge.detector.detector import DetectionRun, PreparedFrame
from edge.errors import BadInputError
from edge.validation.gates import decide
from edge.validation.regression import (
    RegressionTest,
    behaviour_checks,
    evaluate,
    run_regression,
)
from edge.validation.report import build_report, verify_report
from edge.validation.runner import ModelRun, check_comparable, load_for_test, run_model
from edge.validation.suite import Suite, load_suite

from .conftest import reference_eval
from .model_variants import DEMO, jitter_weights, lower_class, write_variant
from .suite_files import make_sim_suite

pytestmark = pytest.mark.slow
GUN, BOTTLE = 0, 4


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Suite:
    return load_suite(make_sim_suite(tmp_path_factory.mktemp("suite") / "sim-suite"))


@pytest.fixture(scope="module")
def demo(suite: Suite) -> tuple[Detector, ModelRun]:
    detector, info = load_for_test(DEMO, suite.policy.evaluation.score_floor)
    return detector, run_model(detector, info, suite)


def run_variant(suite: Suite, directory: Path) -> ModelRun:
    detector, info = load_for_test(directory, suite.policy.evaluation.score_floor)
    return run_model(detector, info, suite)


def test_the_demo_model_passes_against_a_second_run_of_itself(
    suite: Suite, demo: tuple[Detector, ModelRun]
) -> None:
    detector, first = demo
    second = run_model(detector, first.model, suite)  # a real second run, not a copy
    behaviour = behaviour_checks(detector, suite, first)
    outcome = evaluate(suite, first, second, behaviour)
    decision = decide(suite.policy, outcome)
    assert decision.passed, [f.message for f in decision.failures]
    assert outcome.comparison is not None
    pd_changes = [c for c in outcome.comparison.changes if c.metric == "pd"]
    assert len(pd_changes) >= 5 + 15  # every class overall, and per class and clutter
    assert all((c.change, c.low, c.high, c.p_value) == (0, 0, 0, 1) for c in pd_changes)
    runs = {name: (c.ran, c.passed) for name, c in behaviour.items()}
    assert runs["repeat"] == (3, 3) and runs["flip"][0] == 4
    projection = behaviour["projection"]
    assert projection.ran == 5 and projection.rate >= suite.policy.behaviour.projection_min_rate
    assert [case["class"] for case in projection.cases] == list(first.model.classes)
    for case in projection.cases:
        assert case["cleared"]  # taking the threat out again always clears its alarm
        assert case["alarmed"] == (case["iou"] >= 0.3)


def test_a_degraded_model_fails_and_the_report_names_the_class_and_its_slices(
    suite: Suite, demo: tuple[Detector, ModelRun], tmp_path: Path
) -> None:
    _, baseline = demo
    degraded = write_variant(tmp_path / "gun-blind", "1.0.1-degraded", lower_class(GUN, 4.0))
    candidate = run_variant(suite, degraded)
    outcome = evaluate(suite, candidate, baseline, {})
    decision = decide(suite.policy, outcome)
    assert not decision.passed
    regressions = [f for f in decision.failures if f.check == "non_regression"]
    assert {f.class_name for f in regressions} == {"gun"}
    assert {f.slice for f in regressions} == {
        "all",
        "class=gun",
        "class=gun, clutter=low",
        "class=gun, clutter=medium",
        "class=gun, clutter=high",
    }
    gun_bags = {
        b.images[0] for b in suite.bag_truths(candidate.model.classes) if GUN in b.true_classes
    }
    overall = next(f for f in regressions if f.slice == "class=gun")
    assert set(overall.images) == gun_bags and overall.value == -1.0
    absolute = [f for f in decision.failures if f.check == "absolute.pd_min"]
    assert [(f.class_name, f.value) for f in absolute] == [("gun", 0.0)]
    # The JSON report carries the same, self-hashed.
    test = RegressionTest(suite, candidate, baseline, False, outcome, decision)
    doc = build_report(test)
    assert verify_report(doc) and not doc["gate"]["passed"]
    named = {(f["check"], f["class"], f["slice"]) for f in doc["gate"]["failures"]}
    assert ("non_regression", "gun", "class=gun, clutter=high") in named
    assert doc["model"]["version"] == "1.0.1-degraded" and doc["baseline"]["version"] == "1.0.0"
    doc["metrics"]["summary"]["pd"]["gun"] = 1.0
    assert not verify_report(doc)  # any edit shows


def test_a_small_random_change_on_a_small_slice_is_not_called_a_regression(
    suite: Suite, demo: tuple[Detector, ModelRun], tmp_path: Path
) -> None:
    _, baseline = demo
    jittered = write_variant(tmp_path / "jitter", "1.0.2", jitter_weights(0.6, 3, rows=[BOTTLE]))
    candidate = run_variant(suite, jittered)
    outcome = evaluate(suite, candidate, baseline, {})
    assert outcome.comparison is not None
    changed = [c for c in outcome.comparison.changes if c.metric == "pd" and (c.down or c.up)]
    assert changed, "the change must move at least one bag, or this test shows nothing"
    for c in changed:  # the interval says noise: wide, and McNemar far from significant
        assert c.class_name == "bottle" and c.total <= 3
        assert c.low < -suite.policy.non_regression.delta and c.p_value >= 0.5
    decision = decide(suite.policy, outcome)
    assert not [f for f in decision.failures if f.check == "non_regression"]


def test_box_metrics_match_pycocotools_on_the_merged_suite(
    suite: Suite, demo: tuple[Detector, ModelRun]
) -> None:
    _, run = demo
    outcome = evaluate(suite, run, None, {})
    assert outcome.boxes is not None
    doc = __import__("json").loads((suite.root / "sim" / "annotations.json").read_text())
    results = [
        {"image_id": image.image_id, "category_id": int(c) + 1, "score": float(s),
         "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]}
        for image in suite.images
        for b, s, c in zip(run.frames[image.ref].detections.boxes,
                           run.frames[image.ref].detections.scores,
                           run.frames[image.ref].detections.class_ids, strict=True)
    ]  # fmt: skip
    reference = reference_eval(doc, results)
    np.testing.assert_allclose(outcome.boxes.stats, reference.stats, atol=1e-9)
    sizes = [s for s in outcome.boxes.slices if s.spec == "size"]
    assert sum(s.boxes for s in sizes) == len(doc["annotations"])
    clutter = [s for s in outcome.boxes.slices if s.spec == "clutter"]
    assert sum(s.images for s in clutter) == len(suite.images)


def test_runs_on_different_label_versions_are_never_compared(
    demo: tuple[Detector, ModelRun],
) -> None:
    _, run = demo
    relabelled = dataclasses.replace(run, label_version=run.label_version + 1)
    with pytest.raises(BadInputError, match="same suite version"):
        check_comparable(run, relabelled)


def test_run_regression_refuses_a_model_without_a_suite_class(suite: Suite, tmp_path: Path) -> None:
    narrow = write_variant(tmp_path / "narrow", "0.1", lambda arrays: None)
    manifest = (narrow / "manifest.json").read_text().replace('"bottle"', '"battery"')
    (narrow / "manifest.json").write_text(manifest)
    with pytest.raises(BadInputError, match="category 'bottle' is not a class of the model"):
        run_regression(narrow, suite.root)


def test_a_failure_mid_run_surfaces_and_stops_the_reading_thread(
    suite: Suite, demo: tuple[Detector, ModelRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    detector, run = demo
    real, calls = detector.detect_prepared, []

    def failing(prepared: PreparedFrame) -> DetectionRun:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("screening the third frame failed")
        return real(prepared)

    monkeypatch.setattr(detector, "detect_prepared", failing)
    with pytest.raises(RuntimeError, match="third frame") as caught:
        run_model(detector, run.model, suite)
    # Stopped with the run, not left reading ahead while its traceback is still held (as
    # here, and by a caller that reports the error).
    assert caught.traceback
    assert not [t for t in threading.enumerate() if t.name == "edge-test-read"]
