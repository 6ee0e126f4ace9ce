"""`edge test --model DIR --suite DIR [--baseline DIR] [--report FILE] [--json]`.

Exit status: 0 the gate passed, 1 it failed, 2 bad input (suite, policy, model). The run
is recorded in the image log of the data directory (`--data`) unless `--no-record`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from edge.errors import EdgeError
from edge.validation.progress import ProgressBar

logger = logging.getLogger(__name__)

EXIT_PASSED, EXIT_FAILED = 0, 1
SHOWN_IMAGES = 5
SHOWN_FAILURES = 12  # per check; the report has them all


def add_parser(verbs: Any, common: argparse.ArgumentParser) -> None:
    """Register the `test` verb on the `edge` sub-parsers."""
    p = verbs.add_parser(
        "test", parents=[common], help="run a regression suite and its gates on a model"
    )
    p.add_argument("--model", required=True, type=Path, help="model directory to test")
    p.add_argument("--suite", required=True, type=Path, help="suite folder (suite.json)")
    p.add_argument(
        "--baseline", type=Path, help="model directory to compare with (the active model)"
    )
    p.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="write the report here: FILE.html the HTML report (and FILE.json beside it), "
        "any other name the JSON",
    )
    p.add_argument("--json", action="store_true", help="print the JSON report on stdout")
    p.add_argument("--no-record", action="store_true", help="do not add the run to the image log")
    add_thresholds_option(p, "the model (the baseline runs as the device runs it)")
    p.set_defaults(func=run)


def add_thresholds_option(p: argparse.ArgumentParser, file_for: str) -> None:
    p.add_argument(
        "--thresholds",
        metavar="manifest|device|FILE",
        help="the per-class thresholds each model is judged at: 'manifest' (shipped), "
        "'device' (the data directory's `edge calibrate thresholds` overrides for that model, "
        "else its manifest's: what `edge serve` runs; the default), or a JSON file of class "
        f"thresholds for {file_for}",
    )


def data_dir_of(args: argparse.Namespace) -> Path:
    from edge.cli import default_data_dir
    from edge.config import load_config

    config = load_config(Path(args.config) if args.config else None)
    return Path(args.data or config.store.data_dir or default_data_dir())


def run(args: argparse.Namespace) -> int:
    # Imported here: onnxruntime and OpenCV load in seconds, `edge --help` should not wait.
    from edge.store.test_runs import new_run_id, record_test_run, run_row
    from edge.validation.regression import run_regression
    from edge.validation.report import HASH_FIELD, build_report, report_sha256
    from edge.validation.report_files import write_report_files
    from edge.validation.thresholds import rule_from_arg

    data = data_dir_of(args)
    data_dir = None if args.no_record else data
    rule = rule_from_arg(args.thresholds, data)
    test = run_regression(
        args.model, args.suite, args.baseline, ProgressBar.for_terminal(), thresholds=rule
    )
    doc = build_report(test)
    doc["run_id"] = new_run_id()
    doc[HASH_FIELD] = report_sha256(doc)
    if args.report:
        write_report_files(args.report, doc)
    recorded = None
    if data_dir is not None:
        try:
            record_test_run(data_dir, run_row(doc, args.report.absolute() if args.report else None))
            recorded = data_dir
        except EdgeError as exc:
            sys.stderr.write(f"edge: warning: the run was not recorded: {exc.message}\n")
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(format_summary(doc, args.report, recorded))
    return EXIT_PASSED if test.decision.passed else EXIT_FAILED


def _rate(r: dict[str, Any] | None) -> str:
    if r is None or r.get("value") is None:
        return "-"
    return f"{r['value']:.3f} [{r['low']:.2f}, {r['high']:.2f}] ({r['hits']}/{r['total']})"


def judged_line(model: dict[str, Any]) -> str:
    """A report model's thresholds in one line: gun 0.35 (device), knife 0.5 (manifest)."""
    point = model.get("operating_point") or {}
    per_class = ", ".join(
        f"{name} {c['threshold']:g} ({c['source']})" for name, c in point.get("classes", {}).items()
    )
    return f"{per_class}: {point.get('detail', '-')}"


def format_summary(doc: dict[str, Any], report: Path | None, data_dir: Path | None) -> str:
    """What a technician reads: the verdict, the headline figures, every failure."""
    gate, suite, model = doc["gate"], doc["suite"], doc["model"]
    overall = doc["metrics"]["bag"]["slices"][0]
    summary = doc["metrics"]["summary"]
    verdict = "PASSED" if gate["passed"] else "FAILED"
    lines = [
        f"{model['id']} on suite {suite['name']} (label version {suite['label_version']}, "
        f"{suite['images']} images: {suite['threat_bags']} threat bags, "
        f"{suite['clean_bags']} clean): {verdict}",
    ]
    lines.append(f"  thresholds: {judged_line(model)}")
    if doc.get("baseline"):
        lines.append(f"  baseline: {doc['baseline']['id']}, thresholds: "
                     f"{judged_line(doc['baseline'])}")  # fmt: skip
    for name, r in overall["pd"].items():
        lines.append(f"  Pd {name:<10} {_rate(r)}")
    lines.append(f"  Pfa {'':<9} {_rate(overall['pfa'])}")
    map50, p95 = summary.get("map50"), summary.get("p95_ms")
    lines.append(
        "  mAP@0.5 " + ("-" if map50 is None else f"{map50:.3f}")
        + "   p95 detect " + ("-" if p95 is None else f"{p95:.0f} ms")
    )  # fmt: skip
    lines.append("  checks: " + "; ".join(
        f"{c['name']} {'passed' if c['passed'] else 'FAILED'}" for c in gate["checks"]
    ))  # fmt: skip
    shown_per_check: dict[str, int] = {}
    for f in gate["failures"]:
        shown_per_check[f["check"]] = shown_per_check.get(f["check"], 0) + 1
        if shown_per_check[f["check"]] > SHOWN_FAILURES:
            continue
        shown = ", ".join(f["images"][:SHOWN_IMAGES])
        more = f["image_count"] - min(f["image_count"], SHOWN_IMAGES)
        lines.append(f"  FAILED {f['check']} [{f['slice']}] {f['figure']} (bar {f['bar']}): "
                     f"{f['message']}")  # fmt: skip
        if shown:
            lines.append(f"         images: {shown}" + (f" (+{more} more)" if more else ""))
    for check, count in shown_per_check.items():
        if count > SHOWN_FAILURES:
            lines.append(f"  ... and {count - SHOWN_FAILURES} more {check} failures (see --report)")
    if report is not None:
        lines.append(f"report: {report} (sha256 {doc['sha256'][:16]}...)")
    if data_dir is not None:
        lines.append(f"run {doc['run_id']} recorded in {data_dir / 'edge.db'}")
    return "\n".join(lines) + "\n"
