"""The gate: a pure function from a policy and a test's figures to a decision.

Every failed check is named with its slice, the figure, the bar and the images to look
at. A figure the policy asks for and the test could not produce (no bags of a class, no
clean bags, no baseline, a check that could not run) is a failure, never a pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from edge.validation.comparison import PairedChange
from edge.validation.gate_input import GateInput
from edge.validation.policy import Policy

MAX_IMAGES = 50  # per failure; the report's tables hold the rest


@dataclass(frozen=True)
class Failure:
    check: str
    slice: str
    figure: str
    value: float | None
    bar: str
    message: str
    images: tuple[str, ...] = ()
    class_name: str | None = None

    def as_json(self) -> dict[str, Any]:
        value = None if self.value is None or math.isnan(self.value) else self.value
        return {
            "check": self.check,
            "slice": self.slice,
            "class": self.class_name,
            "figure": self.figure,
            "value": value,
            "bar": self.bar,
            "message": self.message,
            "images": list(self.images[:MAX_IMAGES]),
            "image_count": len(self.images),
        }


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    summary: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "summary": self.summary}


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    checks: tuple[CheckResult, ...]
    failures: tuple[Failure, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checks": [c.as_json() for c in self.checks],
            "failures": [f.as_json() for f in self.failures],
        }


def _fmt(x: float | None) -> str:
    return "missing" if x is None or math.isnan(x) else f"{x:.3f}"


def _absolute(policy: Policy, o: GateInput) -> list[Failure]:
    bars = policy.absolute
    overall = o.bags.overall
    out = []
    for name in sorted(set(bars.pd_min) - {"default", *o.classes}):
        out.append(
            Failure(
                "absolute.pd_min",
                "all",
                f"Pd {name}",
                None,
                f">= {bars.pd_min[name]}",
                f"the policy sets a Pd bar for {name}, which the model does not detect",
                class_name=name,
            )
        )
    for name in o.classes:
        bar = bars.pd_bar(name)
        if bar is None:
            continue
        pd = overall.pd.get(name)
        if pd is None:
            out.append(
                Failure(
                    "absolute.pd_min",
                    "all",
                    f"Pd {name}",
                    None,
                    f">= {bar}",
                    f"no threat bags of class {name} in the suite: Pd cannot be shown",
                    class_name=name,
                )
            )
        elif pd.value < bar:
            out.append(
                Failure(
                    "absolute.pd_min",
                    "all",
                    f"Pd {name}",
                    pd.value,
                    f">= {bar}",
                    f"Pd {name} {pd.value:.3f} ({pd.hits}/{pd.total}) is below {bar}",
                    overall.missed.get(name, ()),
                    name,
                )
            )
    if bars.pfa_max is not None:
        pfa = overall.pfa
        if pfa is None:
            out.append(
                Failure(
                    "absolute.pfa_max",
                    "all",
                    "Pfa",
                    None,
                    f"<= {bars.pfa_max}",
                    "no clean bags in the suite: Pfa cannot be shown",
                )
            )
        elif pfa.value > bars.pfa_max:
            out.append(
                Failure(
                    "absolute.pfa_max",
                    "all",
                    "Pfa",
                    pfa.value,
                    f"<= {bars.pfa_max}",
                    f"Pfa {pfa.value:.3f} ({pfa.hits}/{pfa.total}) is above {bars.pfa_max}",
                    overall.false_alarms,
                )
            )
    if bars.map50_min is not None:
        value = None if o.boxes is None or o.boxes.map50 < 0 else o.boxes.map50
        if value is None or value < bars.map50_min:
            errors = () if o.boxes is None else o.boxes.images_with_errors
            out.append(
                Failure(
                    "absolute.map50_min",
                    "all",
                    "mAP@0.5",
                    value,
                    f">= {bars.map50_min}",
                    f"mAP@0.5 {_fmt(value)} is below {bars.map50_min}",
                    errors,
                )
            )
    return out


def _samples(policy: Policy, o: GateInput) -> list[Failure]:
    gated = {s.name for s in policy.gate_specs}
    least = policy.slices.min_samples
    out = []
    for s in o.bags.slices:
        if s.spec not in gated:
            continue
        for name, pd in s.pd.items():
            if pd.total < least:
                out.append(
                    Failure(
                        "slices.min_samples",
                        s.name,
                        f"threat bags of {name}",
                        pd.total,
                        f">= {least}",
                        f"{pd.total} {name} bags in slice {s.name}: too few to judge",
                        class_name=name,
                    )
                )
        if s.pfa is not None and s.pfa.total < least:
            out.append(
                Failure(
                    "slices.min_samples",
                    s.name,
                    "clean bags",
                    s.pfa.total,
                    f">= {least}",
                    f"{s.pfa.total} clean bags in slice {s.name}: too few to judge",
                )
            )
    return out


def _regressed(policy: Policy, c: PairedChange) -> bool:
    nr = policy.non_regression
    if c.metric == "pd":
        if nr.rule == "non_inferiority":
            return not c.low > -nr.delta
        return c.low < -nr.delta and c.p_value < nr.alpha and c.down > c.up
    assert nr.pfa_delta is not None
    if nr.rule == "non_inferiority":
        return not c.high < nr.pfa_delta
    return c.high > nr.pfa_delta and c.p_value < nr.alpha and c.up > c.down


def _non_regression(policy: Policy, o: GateInput) -> list[Failure]:
    nr = policy.non_regression
    if o.comparison is None:
        if not nr.required:
            return []
        return [
            Failure(
                "non_regression",
                "all",
                "baseline",
                None,
                "a baseline model",
                "the policy requires non-regression against a baseline and none was "
                "given (edge test --baseline DIR)",
            )
        ]
    gated = {"all", *(s.name for s in policy.gate_specs)}
    out = [
        Failure(
            "non_regression",
            "all",
            f"Pd {name}",
            None,
            "a baseline figure",
            f"the baseline model has no class {name}: its change cannot be shown",
            class_name=name,
        )
        for name in o.comparison.missing_classes
    ]
    for s in o.bags.slices:
        if s.spec not in gated:
            continue
        for name in s.pd:
            if name in o.comparison.missing_classes:
                continue
            c = o.comparison.find(s.name, "pd", name)
            if c is None:
                out.append(
                    Failure(
                        "non_regression",
                        s.name,
                        f"change in Pd {name}",
                        None,
                        f"> -{nr.delta}",
                        "no paired figure for this slice",
                        class_name=name,
                    )
                )
            elif _regressed(policy, c):
                out.append(
                    Failure(
                        "non_regression",
                        s.name,
                        f"change in Pd {name}, lower bound",
                        c.low,
                        f"> -{nr.delta}",
                        f"Pd {name} {c.baseline:.3f} -> {c.candidate:.3f} (change {c.change:+.3f}, "
                        f"{policy.evaluation.confidence:.0%} interval [{c.low:+.3f}, {c.high:+.3f}], "
                        f"{c.down} bags lost, {c.up} gained, McNemar p={c.p_value:.3g})",
                        c.worse_images,
                        name,
                    )
                )
        if nr.pfa_delta is not None and s.pfa is not None:
            c = o.comparison.find(s.name, "pfa", None)
            if c is None or _regressed(policy, c):
                value = None if c is None else c.high
                message = (
                    "no paired figure for this slice"
                    if c is None
                    else (
                        f"Pfa {c.baseline:.3f} -> {c.candidate:.3f} (interval [{c.low:+.3f}, "
                        f"{c.high:+.3f}], {c.up} new false alarms, McNemar p={c.p_value:.3g})"
                    )
                )
                out.append(
                    Failure(
                        "non_regression",
                        s.name,
                        "change in Pfa, upper bound",
                        value,
                        f"< {nr.pfa_delta}",
                        message,
                        () if c is None else c.worse_images,
                    )
                )
    return out


def _latency(policy: Policy, o: GateInput) -> list[Failure]:
    bar = policy.latency.p95_ms_max
    if bar is None:
        return []
    if o.latency is None or o.latency.frames == 0:
        return [
            Failure(
                "latency.p95_ms_max",
                "all",
                "p95 latency ms",
                None,
                f"<= {bar}",
                "no frames were timed",
            )
        ]
    if o.latency.p95 > bar:
        return [
            Failure(
                "latency.p95_ms_max",
                "all",
                "p95 latency ms",
                o.latency.p95,
                f"<= {bar}",
                f"p95 detect() time {o.latency.p95:.1f} ms is above {bar} ms",
                o.latency.slowest,
            )
        ]
    return []


def _behaviour(policy: Policy, o: GateInput) -> list[Failure]:
    b = policy.behaviour
    wanted = {
        "repeat": (b.repeat_frames, 1.0, "identical results on a second run"),
        "flip": (b.flip_frames, b.flip_min_agreement, "the same alarms when mirrored"),
        "projection": (
            b.projection_per_class,
            b.projection_min_rate,
            "projected threats alarm where they are, and clear when removed",
        ),
    }
    out = []
    for name, (count, bar, meaning) in wanted.items():
        if count == 0:
            continue
        check = o.behaviour.get(name)
        if check is None or check.not_run or not check.ran:
            reason = "it did not run" if check is None else (check.not_run or "nothing to test")
            out.append(
                Failure(
                    f"behaviour.{name}",
                    "all",
                    f"{name} pass rate",
                    None,
                    f">= {bar}",
                    f"{meaning}: not shown, {reason}",
                )
            )
        elif check.rate < bar:
            out.append(
                Failure(
                    f"behaviour.{name}",
                    "all",
                    f"{name} pass rate",
                    check.rate,
                    f">= {bar}",
                    f"{meaning}: {check.passed}/{check.ran} passed",
                    check.failed,
                )
            )
    return out


CHECKS = (
    ("absolute", _absolute),
    ("slices.min_samples", _samples),
    ("non_regression", _non_regression),
    ("latency", _latency),
    ("behaviour", _behaviour),
)


def decide(policy: Policy, outcome: GateInput) -> GateDecision:
    """Apply every gate of the policy; passed only when no check failed."""
    checks, failures = [], []
    for name, check in CHECKS:
        found = check(policy, outcome)
        failures.extend(found)
        summary = "passed" if not found else f"{len(found)} failure(s)"
        checks.append(CheckResult(name, not found, summary))
    return GateDecision(not failures, tuple(checks), tuple(failures))
