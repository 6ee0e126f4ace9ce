"""The gate as a pure function: every failure named, and nothing missing ever passes."""

from __future__ import annotations

import numpy as np
import pytest

from edge.validation.bag_metrics import BagMetrics
from edge.validation.behaviour import BehaviourCheck
from edge.validation.box_slices import BoxMetricsResult
from edge.validation.comparison import PairedComparison
from edge.validation.gate_input import GateInput, LatencyStats
from edge.validation.gates import Failure, decide
from edge.validation.policy import Policy, parse_policy
from edge.validation.slices import BagTruth

CLASSES = ("gun", "knife")
THRESHOLDS = (0.5, 0.5)
LATENCY = LatencyStats(40, 90.0, 120.0, 130.0, 95.0, ("slow.png",))
BEHAVIOUR = {
    "repeat": BehaviourCheck("repeat", 4, 4),
    "flip": BehaviourCheck("flip", 4, 4),
    "projection": BehaviourCheck("projection", 4, 4),
}
BASE_POLICY = """
[slices]
gate = ["class x clutter"]
min_samples = 5
[absolute]
pfa_max = 0.3
[absolute.pd_min]
default = 0.5
[non_regression]
bootstrap_rounds = 500
[latency]
p95_ms_max = 150
"""


def bags(spec: dict[str, list[tuple[bool, bool]]]) -> list[tuple[BagTruth, bool, bool]]:
    """Gun bags per clutter: (baseline hit, candidate hit); knife bags all hit; 10 clean."""
    out = []
    for clutter, pairs in spec.items():
        for i, (base, cand) in enumerate(pairs):
            out.append((BagTruth(f"{clutter}{i}", (f"{clutter}/{i}.png",), {"clutter": clutter},
                                 ((0, {}),)), base, cand))  # fmt: skip
    for i in range(6):
        out.append((BagTruth(f"k{i}", (f"k/{i}.png",), {"clutter": "low"}, ((1, {}),)), True, True))
    for i in range(10):
        out.append((BagTruth(f"c{i}", (f"c/{i}.png",), {"clutter": "low"}), False, False))
    return out


def outcome(
    policy: Policy, spec: dict[str, list[tuple[bool, bool]]], *, baseline: bool = True, **extra
) -> GateInput:  # type: ignore[no-untyped-def]
    metrics = BagMetrics(CLASSES, THRESHOLDS, policy.report_specs)
    paired = PairedComparison(CLASSES, THRESHOLDS, THRESHOLDS, policy.gate_specs, rounds=500)
    for truth, base, cand in bags(spec):
        cls = next(iter(truth.true_classes), 0)
        cand_scores = np.zeros(2, np.float32)
        base_scores = np.zeros(2, np.float32)
        cand_scores[cls], base_scores[cls] = (0.9 if cand else 0.1), (0.9 if base else 0.1)
        if not truth.boxes:
            cand_scores[:] = base_scores[:] = 0.0
        metrics.update(truth, cand_scores)
        paired.update(truth, cand_scores, base_scores)
    fields = {
        "boxes": BoxMetricsResult((0.5, 0.8) + (0.0,) * 10, (), ()),
        "comparison": paired.compute() if baseline else None,
        "latency": LATENCY,
        "behaviour": BEHAVIOUR,
    }
    fields.update(extra)
    return GateInput(CLASSES, metrics.compute(), **fields)


STEADY = {"low": [(True, True)] * 8 + [(False, False)] * 2, "high": [(True, True)] * 10}


def checks(failures: tuple[Failure, ...]) -> list[str]:
    return [f.check for f in failures]


def test_a_model_equal_to_its_baseline_passes() -> None:
    policy = parse_policy(BASE_POLICY)
    decision = decide(policy, outcome(policy, STEADY))
    assert decision.passed, decision.failures
    assert [c.name for c in decision.checks] == [
        "absolute", "slices.min_samples", "non_regression", "latency", "behaviour"
    ]  # fmt: skip


def test_a_real_regression_is_named_with_slice_class_figure_bar_and_images() -> None:
    policy = parse_policy(BASE_POLICY)
    spec = dict(STEADY, high=[(True, False)] * 8 + [(True, True)] * 2)
    decision = decide(policy, outcome(policy, spec))
    assert not decision.passed
    regressions = [f for f in decision.failures if f.check == "non_regression"]
    slices = {f.slice for f in regressions}
    assert slices == {"all", "class=gun, clutter=high"}
    failure = next(f for f in regressions if f.slice == "class=gun, clutter=high")
    assert failure.class_name == "gun" and failure.bar == "> -0.05"
    assert failure.value is not None and failure.value < -0.05
    assert failure.images == tuple(f"high/{i}.png" for i in range(8))
    assert "1.000 -> 0.200" in failure.message and "McNemar" in failure.message
    assert failure.as_json()["image_count"] == 8


def test_noise_on_a_small_slice_is_not_a_regression_unless_the_rule_is_non_inferiority() -> None:
    # 2 bags lost and 1 gained out of 10: the interval is wide and McNemar p = 1.
    spec = dict(STEADY, high=[(True, False)] * 2 + [(False, True)] + [(True, True)] * 7)
    policy = parse_policy(BASE_POLICY)
    result = outcome(policy, spec)
    change = result.comparison.find("class=gun, clutter=high", "pd", "gun")  # type: ignore[union-attr]
    assert change is not None and change.low < -0.05 and change.p_value == 1.0
    assert decide(policy, result).passed
    strict = parse_policy(
        BASE_POLICY.replace("[non_regression]", '[non_regression]\nrule = "non_inferiority"')
    )
    failures = decide(strict, outcome(strict, spec)).failures
    # Unchanged slices hold (their interval is [0, 0]); the noisy ones cannot show they did not
    # drop by more than delta, so the strict rule fails them.
    assert {f.slice for f in failures if f.check == "non_regression"} == {
        "all",
        "class=gun, clutter=high",
    }


def test_missing_baseline_fails_when_required_and_only_then() -> None:
    policy = parse_policy(BASE_POLICY)
    failures = decide(policy, outcome(policy, STEADY, baseline=False)).failures
    assert checks(failures) == ["non_regression"]
    assert "none was given" in failures[0].message
    optional = parse_policy(
        BASE_POLICY.replace("[non_regression]", "[non_regression]\nrequired = false")
    )
    assert decide(optional, outcome(optional, STEADY, baseline=False)).passed


def test_missing_figures_fail() -> None:
    policy = parse_policy(BASE_POLICY.replace("default = 0.5", "default = 0.5\nbottle = 0.9")
                          .replace("pfa_max = 0.3", "pfa_max = 0.3\nmap50_min = 0.5"))  # fmt: skip
    result = outcome(policy, STEADY, boxes=None, latency=None, behaviour={})
    failures = decide(policy, result).failures
    by_check = {f.check: f for f in failures}
    assert by_check["absolute.pd_min"].class_name == "bottle"
    assert "does not detect" in by_check["absolute.pd_min"].message
    assert by_check["absolute.map50_min"].value is None
    assert by_check["latency.p95_ms_max"].message == "no frames were timed"
    assert {"behaviour.repeat", "behaviour.flip", "behaviour.projection"} <= set(by_check)
    assert "did not run" in by_check["behaviour.flip"].message


def test_absolute_bars_name_the_evidence() -> None:
    policy = parse_policy(BASE_POLICY.replace("default = 0.5", "default = 0.5\ngun = 0.95")
                          .replace("p95_ms_max = 150", "p95_ms_max = 100"))  # fmt: skip
    failures = decide(policy, outcome(policy, STEADY)).failures
    pd = next(f for f in failures if f.check == "absolute.pd_min")
    assert (pd.class_name, pd.value, pd.bar) == ("gun", 0.9, ">= 0.95")
    assert pd.images == ("low/8.png", "low/9.png")
    latency = next(f for f in failures if f.check == "latency.p95_ms_max")
    assert (latency.value, latency.images) == (120.0, ("slow.png",))


def test_too_few_samples_and_failed_behaviour() -> None:
    policy = parse_policy(BASE_POLICY.replace("min_samples = 5", "min_samples = 8"))
    behaviour = dict(BEHAVIOUR, flip=BehaviourCheck("flip", 4, 2, ("a.png", "b.png")),
                     projection=BehaviourCheck("projection", 0, 0, not_run="no clean bags"))  # fmt: skip
    failures = decide(policy, outcome(policy, STEADY, behaviour=behaviour)).failures
    samples = [f for f in failures if f.check == "slices.min_samples"]
    assert [(f.slice, f.value) for f in samples] == [("class=knife, clutter=low", 6)]
    flip = next(f for f in failures if f.check == "behaviour.flip")
    assert (flip.value, flip.images) == (0.5, ("a.png", "b.png"))
    projection = next(f for f in failures if f.check == "behaviour.projection")
    assert "no clean bags" in projection.message


@pytest.mark.parametrize("count_key", ["repeat_frames", "flip_frames", "projection_per_class"])
def test_a_behaviour_check_switched_off_is_not_required(count_key: str) -> None:
    policy = parse_policy(BASE_POLICY + f"[behaviour]\n{count_key} = 0\n")
    name = {"repeat_frames": "repeat", "flip_frames": "flip"}.get(count_key, "projection")
    behaviour = {k: v for k, v in BEHAVIOUR.items() if k != name}
    assert decide(policy, outcome(policy, STEADY, behaviour=behaviour)).passed
