"""`edge acceptance --suite DIR --site NAME --operator NAME [--model DIR] [--report FILE]
[--waive-image-quality REASON] [--json]`: the vendor's factory or site acceptance.

Exit status: 0 every item passed, 1 one failed, 2 bad input. The run is recorded in the
image log of the data directory as a test run of kind "acceptance" unless `--no-record`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge.errors import BadInputError, EdgeError
from edge.validation.progress import ProgressBar
from edge.validation.test_cmd import add_thresholds_option, data_dir_of, judged_line

EXIT_PASSED, EXIT_FAILED = 0, 1
MAX_NAME = 200


def add_parser(verbs: Any, common: argparse.ArgumentParser) -> None:
    """Register the `acceptance` verb on the `edge` sub-parsers."""
    p = verbs.add_parser(
        "acceptance",
        parents=[common],
        help="factory or site acceptance: suite gates, latency, image quality, signatures",
    )
    p.add_argument("--suite", required=True, type=Path, help="acceptance suite folder")
    p.add_argument("--site", required=True, help="the site (or factory) accepting")
    p.add_argument("--operator", required=True, help="who runs the acceptance")
    p.add_argument(
        "--model", type=Path, help="model directory (default: the data directory's active model)"
    )
    p.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="write the report: FILE.html the HTML (and FILE.json beside it), else the JSON",
    )
    p.add_argument(
        "--waive-image-quality",
        metavar="REASON",
        help="accept without a test-piece check when none was ever recorded (the reason is "
        "printed in the report); a failed or stale check cannot be waived",
    )
    p.add_argument("--json", action="store_true", help="print the JSON report on stdout")
    p.add_argument("--no-record", action="store_true", help="do not add the run to the image log")
    add_thresholds_option(p, "the model")
    p.set_defaults(func=run)


def _name(value: str, flag: str) -> str:
    text = " ".join(value.split())
    if not text or len(text) > MAX_NAME or not text.isprintable():
        raise BadInputError(f"{flag}: expected a name of 1 to {MAX_NAME} printable characters")
    return text


def active_model_dir(data_dir: Path) -> Path:
    """The model `edge serve` would run from `data_dir`: its active model, else the
    shipped demo model."""
    from edge.config import DEFAULT_MODEL_DIR
    from edge.upgrade.model_store import ModelStore

    active = ModelStore(data_dir).active()
    return active.path if active is not None else DEFAULT_MODEL_DIR


def run(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.store.test_runs import new_run_id, record_test_run
    from edge.validation.acceptance import acceptance_report, image_quality
    from edge.validation.regression import run_regression
    from edge.validation.report_files import write_report_files
    from edge.validation.thresholds import rule_from_arg

    site, operator = _name(args.site, "--site"), _name(args.operator, "--operator")
    waiver = (
        None
        if args.waive_image_quality is None
        else _name(args.waive_image_quality, "--waive-image-quality")
    )
    config = load_config(Path(args.config) if args.config else None)
    data_dir = data_dir_of(args)
    model_dir = args.model or active_model_dir(data_dir)
    rule = rule_from_arg(args.thresholds, data_dir)
    quality = image_quality(data_dir, config.calibration.testpiece.max_age_h, waiver)
    test = run_regression(model_dir, args.suite, None, ProgressBar.for_terminal(), thresholds=rule)
    doc = acceptance_report(test, quality, site=site, operator=operator, run_id=new_run_id())
    if args.report:
        write_report_files(args.report, doc)
    recorded = None
    if not args.no_record:
        try:
            record_test_run(data_dir, acceptance_row(doc, args.report))
            recorded = data_dir
        except EdgeError as exc:
            sys.stderr.write(f"edge: warning: the run was not recorded: {exc.message}\n")
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(format_summary(doc, args.report, recorded))
    return EXIT_PASSED if doc["passed"] else EXIT_FAILED


def acceptance_row(doc: dict[str, Any], report_path: Path | None) -> dict[str, Any]:
    """The image-log row of an acceptance run: the test's row, as kind "acceptance", with
    the acceptance document (and its hash and verdict) as its report."""
    from edge.store.test_runs import run_row

    path = None if report_path is None else report_path.absolute()
    row = run_row(doc["test"], path)
    summary = json.loads(row["summary"])
    summary.update(
        kind="acceptance",
        failures=sum(1 for item in doc["items"] if not item["passed"]),
        report_sha256=doc["sha256"],
    )
    row.update(
        id=doc["run_id"],
        created=doc["created"],
        passed=int(bool(doc["passed"])),
        summary=json.dumps(summary, separators=(",", ":")),
        report=json.dumps(doc, separators=(",", ":")),
    )
    return row


def format_summary(doc: dict[str, Any], report: Path | None, data_dir: Path | None) -> str:
    """What the vendor reads: the verdict and each item."""
    verdict = "PASSED" if doc["passed"] else "FAILED"
    lines = [
        f"acceptance of {doc['model']['id']} at {doc['site']} (operator {doc['operator']}), "
        f"suite {doc['suite']['name']}: {verdict}",
        f"  thresholds: {judged_line(doc['model'])}",
    ]
    for item in doc["items"]:
        state = "waived" if item["waived"] else ("passed" if item["passed"] else "FAILED")
        lines.append(f"  {item['name']:<14} {state}: {item['detail']}")
    if report is not None:
        lines.append(f"report: {report} (sha256 {doc['sha256']})")
    if data_dir is not None:
        lines.append(f"run {doc['run_id']} recorded in {data_dir / 'edge.db'}")
    return "\n".join(lines) + "\n"
