"""A regression test: a model (and optionally its baseline) over a suite, figures, gate.

    test = run_regression(model_dir, suite_dir, baseline_dir)   # RegressionTest
    test.decision.passed

The shell of the validation package: it reads the suite and models and runs them; the
figures (bag_metrics, comparison, box_slices) and the gate (gates) are pure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.detector import Detector
from edge.validation.bag_metrics import BagMetrics
from edge.validation.behaviour import (
    BehaviourCheck,
    check_flip,
    check_projection,
    check_repeat,
    pick,
)
from edge.validation.box_slices import BoxMetricsResult, box_metrics
from edge.validation.comparison import PairedComparison
from edge.validation.gate_input import GateInput, LatencyStats
from edge.validation.gates import GateDecision, decide
from edge.validation.runner import (
    ModelInfo,
    ModelRun,
    check_comparable,
    detector_for,
    load_for_test,
    read_for_test,
    run_model,
)
from edge.validation.slices import BagTruth
from edge.validation.suite import Suite, load_suite
from edge.validation.thresholds import ThresholdRule

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class RegressionTest:
    suite: Suite
    candidate: ModelRun
    baseline: ModelRun | None
    baseline_reused: bool  # same graph and thresholds: the candidate's run stood for it
    outcome: GateInput
    decision: GateDecision
    timing_s: dict[str, float] = field(default_factory=dict)


def latency_stats(run: ModelRun, slowest: int = 5) -> LatencyStats:
    refs = list(run.frames)
    times = np.array([run.frames[r].latency_ms for r in refs], np.float64)
    if not len(times):
        return LatencyStats(0, float("nan"), float("nan"), float("nan"), float("nan"))
    order = np.argsort(-times, kind="stable")[:slowest]
    return LatencyStats(
        len(times),
        float(np.percentile(times, 50)),
        float(np.percentile(times, 95)),
        float(times.max()),
        float(times.mean()),
        tuple(refs[i] for i in order),
        sum(run.frames[r].inference_ms for r in refs) / 1e3,
    )


def _scores_by_name(run: ModelRun, bag: BagTruth, classes: tuple[str, ...]) -> np.ndarray:
    """The baseline's best scores in the candidate's class order (0 where it lacks one)."""
    own = run.max_scores(bag)
    index = {name: i for i, name in enumerate(run.model.classes)}
    return np.array([own[index[c]] if c in index else 0.0 for c in classes], np.float32)


def _same_model(a: ModelInfo, b: ModelInfo) -> bool:
    return (a.sha256, a.thresholds, a.classes, a.representation) == (
        b.sha256,
        b.thresholds,
        b.classes,
        b.representation,
    )


def behaviour_refs(suite: Suite) -> set[str]:
    """The images the repeat and flip checks screen again: the run keeps their frames, so
    they are read, checked and decoded once."""
    b = suite.policy.behaviour
    images = list(suite.images)
    picked = pick(images, b.repeat_frames, b.seed) if b.repeat_frames else []
    picked += pick(images, b.flip_frames, b.seed + 1) if b.flip_frames else []
    return {image.ref for image in picked}


def behaviour_checks(detector: Detector, suite: Suite, run: ModelRun) -> dict[str, BehaviourCheck]:
    b = suite.policy.behaviour
    checks: dict[str, BehaviourCheck] = {}
    images = list(suite.images)
    if b.repeat_frames:
        checks["repeat"] = check_repeat(detector, suite, run, pick(images, b.repeat_frames, b.seed))
    if b.flip_frames:
        checks["flip"] = check_flip(detector, suite, run, pick(images, b.flip_frames, b.seed + 1))
    if b.projection_per_class:
        bags = {t.key: t for t in suite.bag_truths(run.model.classes)}
        clean = [im for im in images if not bags[im.bag].boxes and len(bags[im.bag].images) == 1]
        checks["projection"] = check_projection(
            detector,
            suite,
            run,
            clean,
            per_class=b.projection_per_class,
            min_iou=b.projection_iou,
            seed=b.seed,
        )
    return checks


def evaluate(
    suite: Suite,
    candidate: ModelRun,
    baseline: ModelRun | None,
    behaviour: dict[str, BehaviourCheck],
    boxes: BoxMetricsResult | None = None,
) -> GateInput:
    """Every figure of the test from the runs (pure: no model is run here); `boxes`, when
    given, are the candidate's box metrics computed already."""
    policy = suite.policy
    info = candidate.model
    bags = suite.bag_truths(info.classes)
    metrics = BagMetrics(
        info.classes, info.thresholds, policy.report_specs, policy.evaluation.confidence
    )
    for bag in bags:
        metrics.update(bag, candidate.max_scores(bag))
    comparison = None
    if baseline is not None:
        check_comparable(candidate, baseline)
        suite.bag_truths(baseline.model.classes)  # the baseline must know the suite's classes
        own = dict(zip(baseline.model.classes, baseline.model.thresholds, strict=True))
        nr = policy.non_regression
        paired = PairedComparison(
            info.classes,
            info.thresholds,
            [own.get(c, float("nan")) for c in info.classes],
            policy.gate_specs,
            rounds=nr.bootstrap_rounds,
            confidence=policy.evaluation.confidence,
            seed=nr.seed,
        )
        for bag in bags:
            paired.update(
                bag, candidate.max_scores(bag), _scores_by_name(baseline, bag, info.classes)
            )
        comparison = paired.compute()
    return GateInput(
        info.classes,
        metrics.compute(),
        boxes if boxes is not None else box_metrics(suite, candidate, policy.report_specs),
        comparison,
        latency_stats(candidate),
        behaviour,
    )


def run_regression(
    model_dir: Path | str,
    suite_dir: Path | str,
    baseline_dir: Path | str | None = None,
    progress: Progress | None = None,
    thresholds: ThresholdRule | None = None,
) -> RegressionTest:
    """Run the suite's test of a model, against a baseline when given, each judged at the
    thresholds `thresholds` chooses for it (default: their manifests'; a FILE's are for the
    model, the baseline runs as the device runs it). Bad input (suite, model directories, a
    class the suite has and a model lacks) raises EdgeError."""
    rule = thresholds or ThresholdRule()
    timing: dict[str, float] = {}
    start = time.perf_counter()
    suite = load_suite(suite_dir)
    floor = suite.policy.evaluation.score_floor
    detector, info = load_for_test(model_dir, floor, rule)
    suite.bag_truths(info.classes)  # refuse a model that lacks a suite class before running
    timing["load_s"] = time.perf_counter() - start

    def stage(name: str) -> Callable[[int, int], None] | None:
        return None if progress is None else (lambda done, total: progress(name, done, total))

    candidate = run_model(detector, info, suite, stage("model"), behaviour_refs(suite))
    timing["model_s"] = candidate.wall_s
    baseline, reused = None, False
    if baseline_dir is not None:
        spec, model_bytes, base_info = read_for_test(baseline_dir, rule.for_baseline())
        if _same_model(base_info, info):
            baseline, reused = candidate, True  # no second session: its run would be this one
        else:
            suite.bag_truths(base_info.classes)
            base_detector = detector_for(spec, model_bytes, base_info, floor)
            baseline = run_model(base_detector, base_info, suite, stage("baseline"))
            timing["baseline_s"] = baseline.wall_s
            del base_detector
        del model_bytes
    t = time.perf_counter()
    # Box metrics are numpy work and the behavioural checks mostly inference, which leaves
    # the GIL: side by side they share the cores better than one after the other.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-test-boxes") as pool:
        boxes = pool.submit(box_metrics, suite, candidate, suite.policy.report_specs)
        behaviour = behaviour_checks(detector, suite, candidate)
        timing["behaviour_s"] = time.perf_counter() - t
        box_result = boxes.result()
    t = time.perf_counter()
    outcome = evaluate(suite, candidate, baseline, behaviour, box_result)
    decision = decide(suite.policy, outcome)
    timing["metrics_s"] = time.perf_counter() - t
    timing["total_s"] = time.perf_counter() - start
    return RegressionTest(suite, candidate, baseline, reused, outcome, decision, timing)
