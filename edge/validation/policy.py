"""A suite's policy file (`policy.toml`): which slices to report, and the gates.

Strict: an unknown key, a value of the wrong type or out of bounds is refused with its key
path ("non_regression.delta: Input should be less than or equal to 1"). The standard
suite's policy, with a comment on every key, is STANDARD_POLICY_TOML.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge.config import config_errors
from edge.errors import BadInputError
from edge.validation.slices import SliceSpec

MAX_POLICY_BYTES = 256 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _specs(values: list[str]) -> list[str]:
    for text in values:
        try:
            SliceSpec.parse(text)
        except BadInputError as exc:
            raise ValueError(exc.message) from None
    return values


class EvaluationPolicy(_Strict):
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="level of every interval")
    score_floor: float = Field(
        0.05,
        ge=0.0,
        lt=1.0,
        description="detections kept for box metrics (COCO AP); the bag figures use the "
        "model's own thresholds",
    )


class SlicesPolicy(_Strict):
    report: list[str] = Field(
        default_factory=lambda: ["clutter", "occluded", "rotation", "size", "view", "bag"],
        description="slice specs reported (dimensions joined by ' x ')",
    )
    gate: list[str] = Field(
        default_factory=list,
        description="slice specs gated: minimum samples and non-regression per slice",
    )
    min_samples: int = Field(
        20, ge=1, le=1_000_000, description="bags a gated slice needs for its figures to count"
    )

    _check_report = field_validator("report", "gate")(_specs)


class AbsolutePolicy(_Strict):
    pd_min: dict[str, float] = Field(
        default_factory=dict,
        description="Pd each class must reach on the whole suite; 'default' covers the rest",
    )
    pfa_max: float | None = Field(None, ge=0.0, le=1.0, description="highest Pfa, whole suite")
    map50_min: float | None = Field(None, ge=0.0, le=1.0, description="lowest COCO mAP@0.5")

    @field_validator("pd_min")
    @classmethod
    def _fractions(cls, value: dict[str, float]) -> dict[str, float]:
        for name, bar in value.items():
            if not 0.0 <= bar <= 1.0:
                raise ValueError(f"{name}: expected 0 <= Pd <= 1, got {bar}")
        return value

    def pd_bar(self, class_name: str) -> float | None:
        return self.pd_min.get(class_name, self.pd_min.get("default"))


class NonRegressionPolicy(_Strict):
    required: bool = Field(True, description="compare with a baseline; none given fails")
    delta: float = Field(0.05, ge=0.0, le=1.0, description="tolerated drop in Pd per slice")
    rule: Literal["significant_drop", "non_inferiority"] = Field(
        "significant_drop",
        description="significant_drop: a slice regresses when its interval's lower bound is "
        "below -delta AND the exact McNemar test finds the drop significant at alpha; "
        "non_inferiority: every gated slice's lower bound must be above -delta",
    )
    alpha: float = Field(0.05, gt=0.0, lt=1.0, description="McNemar significance level")
    bootstrap_rounds: int = Field(2000, ge=100, le=100_000, description="paired bootstrap")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="bootstrap seed")
    pfa_delta: float | None = Field(
        None, ge=0.0, le=1.0, description="tolerated rise in Pfa per slice (None: not gated)"
    )


class LatencyPolicy(_Strict):
    p95_ms_max: float | None = Field(
        None, gt=0.0, le=600_000.0, description="p95 of detect() per frame on this device, ms"
    )


class BehaviourPolicy(_Strict):
    repeat_frames: int = Field(8, ge=0, le=10_000, description="frames run twice (0: off)")
    flip_frames: int = Field(8, ge=0, le=10_000, description="frames run flipped (0: off)")
    flip_min_agreement: float = Field(
        0.8, ge=0.0, le=1.0, description="share of flipped frames with the same alarms"
    )
    projection_per_class: int = Field(
        2, ge=0, le=1000, description="threats projected into clean bags per class (0: off)"
    )
    projection_min_rate: float = Field(
        1.0, ge=0.0, le=1.0, description="share of projections that must alarm and then clear"
    )
    projection_iou: float = Field(
        0.3, gt=0.0, le=1.0, description="IoU an alarm needs with the projected threat's box"
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="which frames, threats and places")


class Policy(_Strict):
    version: Literal[1] = Field(1, description="policy format version")
    evaluation: EvaluationPolicy = EvaluationPolicy()
    slices: SlicesPolicy = SlicesPolicy()
    absolute: AbsolutePolicy = AbsolutePolicy()
    non_regression: NonRegressionPolicy = NonRegressionPolicy()
    latency: LatencyPolicy = LatencyPolicy()
    behaviour: BehaviourPolicy = BehaviourPolicy()

    @property
    def report_specs(self) -> list[SliceSpec]:
        """Reported specs, gated ones included, each once, in order."""
        names = dict.fromkeys([*self.slices.report, *self.slices.gate])
        return [SliceSpec.parse(n) for n in names]

    @property
    def gate_specs(self) -> list[SliceSpec]:
        return [SliceSpec.parse(n) for n in self.slices.gate]

    def check_classes(self, classes: Sequence[str], source: str) -> None:
        """Refuse Pd bars for classes the suite does not have (a typo is not a pass)."""
        unknown = sorted(set(self.absolute.pd_min) - {"default", *classes})
        if unknown:
            raise BadInputError(
                f"{source}: absolute.pd_min.{unknown[0]}: not a class of the suite "
                f"(classes: {', '.join(classes)})"
            )


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Validate policy TOML; BadInputError lists every problem with its key path."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        lines = "\n".join(f"  {line}" for line in config_errors(exc))
        raise BadInputError(f"{source}: {exc.error_count()} error(s):\n{lines}") from exc


def load_policy(path: Path) -> Policy:
    try:
        size = path.stat().st_size
        if size > MAX_POLICY_BYTES:
            raise BadInputError(f"{path}: {size} bytes; a policy is at most {MAX_POLICY_BYTES}")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: cannot read the policy: {exc}") from exc
    return parse_policy(text, str(path))


STANDARD_POLICY_TOML = """\
# Gates of a regression suite, read by `edge test` (README: "Regression suites and gates").
# Figures are read at the model's operating point (its manifest thresholds). The absolute
# bars are set below what the demo model reaches on the standard suite (Pd 0.32-0.68 per
# class, Pfa 0.15, mAP@0.5 0.34: the suite's cells are hard on purpose), by 2-3 standard
# errors: they catch a broken model; non-regression catches a worse one. A site sets its own.
version = 1

[evaluation]
confidence = 0.95       # level of the Wilson and bootstrap intervals
score_floor = 0.05      # detections kept for COCO AP (bag figures use the thresholds)

[slices]
# Dimensions: image attributes (clutter, view, bag), box attributes (occluded, rotation,
# size) and "class"; " x " combines them.
report = ["clutter", "occluded", "rotation", "size", "view", "bag", "clutter x occluded"]
gate = ["class", "class x clutter", "class x occluded", "class x rotation", "class x size"]
min_samples = 20        # bags a gated slice needs; fewer fails (too little evidence)

[absolute]
pfa_max = 0.25          # clean bags that alarm, whole suite
map50_min = 0.25        # COCO mAP@0.5, whole suite

[absolute.pd_min]       # Pd per class, whole suite
default = 0.25
gun = 0.55

[non_regression]
required = true         # no --baseline: this check fails
delta = 0.05            # tolerated drop in Pd per gated slice
rule = "significant_drop"
alpha = 0.05            # exact McNemar test on the bags that changed
bootstrap_rounds = 2000
seed = 0

[latency]
p95_ms_max = 1000.0     # detect() per frame on this device

[behaviour]
repeat_frames = 4       # run twice: results must be identical
flip_frames = 8         # mirrored left-right: the same alarms
flip_min_agreement = 0.5
projection_per_class = 1  # a threat added to a clean bag must alarm there, and clear when removed
projection_min_rate = 0.8
projection_iou = 0.3
seed = 0
"""


# For a suite imported without --policy: only what any data set supports (its attributes
# are unknown here). Absolute bars are a site's decision; non-regression and the
# behavioural checks hold for any model.
IMPORTED_POLICY_TOML = """\
# Gates of an imported suite, read by `edge test`; replace it with `edge suite import
# --policy FILE` to slice by the data's attributes and to set absolute bars.
version = 1

[slices]
report = []
gate = ["class"]
min_samples = 20

[non_regression]
required = true
delta = 0.05

[behaviour]
repeat_frames = 4
flip_frames = 12
flip_min_agreement = 0.5
projection_per_class = 2
projection_min_rate = 0.8
"""
