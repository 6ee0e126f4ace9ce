"""The upgrade gate: a candidate model must pass the device's regression suite, and the
bundle's own tests, under the DEVICE's gate policy, compared with the active model.

A bundle cannot weaken the gates: its tests run with the policy of the device's suite, not
the policy file it brings. No suite on the device is a refusal, never a pass; so is a test
that cannot run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edge.errors import EdgeError
from edge.upgrade.errors import UpgradeRefusedError

logger = logging.getLogger(__name__)

SHOWN_FAILURES = 5


@dataclass(frozen=True)
class GateResult:
    """The decision, the failures in plain words, and one summary per suite run."""

    passed: bool
    failures: tuple[str, ...]
    runs: tuple[dict[str, Any], ...] = ()


class Gate(Protocol):
    """Decides whether `candidate` may replace `baseline` (model directories)."""

    def check(self, candidate: Path, baseline: Path, extra_tests: Path | None) -> GateResult: ...


def no_suite(where: Path) -> UpgradeRefusedError:
    return UpgradeRefusedError(
        f"upgrade refused: no regression suite available on this device (expected "
        f"{where / 'suite.json'}); install the device's suite (`edge suite import` or "
        "`edge simulate suite`) before installing upgrades",
        "gate",
    )


class RegressionGate:
    """edge.validation's regression test as the gate. `record_in`: a data directory whose
    image log gets each run (listed with the test runs), or None. `data_dir` (default
    `record_in`): the device whose thresholds each model is judged at, as `edge serve` would
    run it: the active model at its calibrated overrides when they were made for its SHA-256,
    the candidate (another SHA) at its manifest's; None: both at their manifests'."""

    def __init__(
        self, suite_dir: Path, record_in: Path | None = None, data_dir: Path | None = None
    ) -> None:
        self.suite_dir = Path(suite_dir)
        self.record_in = record_in
        self.data_dir = data_dir if data_dir is not None else record_in

    def _rule(self) -> Any:
        from edge.validation.thresholds import DEVICE, ThresholdRule

        return ThresholdRule() if self.data_dir is None else ThresholdRule(DEVICE, self.data_dir)

    def check(self, candidate: Path, baseline: Path, extra_tests: Path | None) -> GateResult:
        from edge.validation.regression import RegressionTest, run_regression
        from edge.validation.suite import load_suite

        if not (self.suite_dir / "suite.json").is_file():
            raise no_suite(self.suite_dir)
        tests: list[tuple[str, RegressionTest]] = []
        try:
            rule = self._rule()
            device = run_regression(candidate, self.suite_dir, baseline, thresholds=rule)
            tests.append(("device", device))
            if extra_tests is not None:
                bundle_suite = load_suite(extra_tests)
                tests.append(
                    ("bundle", run_with_policy(candidate, bundle_suite, baseline, device, rule))
                )
        except EdgeError as exc:
            raise UpgradeRefusedError(
                f"upgrade refused: the regression test could not run: {exc.message}", "gate"
            ) from None
        failures: list[str] = []
        runs: list[dict[str, Any]] = []
        for origin, test in tests:
            runs.append(self._summary(origin, test))
            for f in test.decision.failures:
                failures.append(
                    f"{origin} suite {test.suite.name}: {f.check} [{f.slice}] {f.figure} "
                    f"(bar {f.bar}): {f.message}"
                )
        return GateResult(not failures, tuple(failures), tuple(runs))

    def _summary(self, origin: str, test: Any) -> dict[str, Any]:
        from edge.validation.report import HASH_FIELD, build_report, report_sha256

        doc = build_report(test)
        run_id = None
        if self.record_in is not None:
            from edge.store.test_runs import new_run_id, record_test_run, run_row

            doc["run_id"] = new_run_id()
            doc[HASH_FIELD] = report_sha256(doc)
            try:
                run_id = record_test_run(self.record_in, run_row(doc))
            except EdgeError as exc:
                logger.warning("gate run not recorded: %s", exc.message)
        else:
            doc[HASH_FIELD] = report_sha256(doc)
        return {
            "origin": origin,
            "suite": test.suite.name,
            "suite_sha256": test.suite.sha256,
            "passed": test.decision.passed,
            "failures": len(test.decision.failures),
            "report_sha256": doc[HASH_FIELD],
            "run_id": run_id,
        }


def run_with_policy(
    candidate: Path, suite: Any, baseline: Path, device: Any, thresholds: Any = None
) -> Any:
    """run_regression on an already loaded suite, with the device test's policy in place of
    the suite's own (the bundle's policy file counts for nothing); `thresholds`: the
    ThresholdRule choosing each model's thresholds (default: the manifests')."""
    from edge.validation.gates import decide
    from edge.validation.regression import RegressionTest, behaviour_checks, evaluate
    from edge.validation.runner import load_for_test, run_model

    policy = device.suite.policy
    suite = dataclasses.replace(suite, policy=policy)
    policy.check_classes(suite.classes, f"{suite.root} (under the device's policy)")
    detector, info = load_for_test(candidate, policy.evaluation.score_floor, thresholds)
    suite.bag_truths(info.classes)
    run = run_model(detector, info, suite)
    base_detector, base_info = load_for_test(baseline, policy.evaluation.score_floor, thresholds)
    suite.bag_truths(base_info.classes)
    base_run = run_model(base_detector, base_info, suite)
    behaviour = behaviour_checks(detector, suite, run)
    outcome = evaluate(suite, run, base_run, behaviour)
    return RegressionTest(suite, run, base_run, False, outcome, decide(policy, outcome))


def format_failures(failures: Sequence[str]) -> str:
    shown = "; ".join(failures[:SHOWN_FAILURES])
    more = len(failures) - SHOWN_FAILURES
    return shown + (f"; and {more} more" if more > 0 else "")
