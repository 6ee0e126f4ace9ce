"""`edge calibrate thresholds`: the device's operating point, chosen on a calibration set.

    edge calibrate thresholds --model DIR --dataset DIR --target-pd 0.95 [--max-pfa F]

Screens the calibration set (a COCO data set, never a test suite) with the model, chooses
per class the highest threshold reaching the target bag-level Pd (the lowest Pfa), and,
when every class reaches it (and Pfa is within --max-pfa), writes the device overrides
DATA/calibration/thresholds.json. The report (curves and chosen point) is always written.
Exit status: 0 written; 1 a class missed the target or Pfa is over the bar (nothing
written: the thresholds in force stay); 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from calibration.calibration_set import read_calibration_set, refuse_test_sets, screen
from calibration.errors import CalibrationInputError
from calibration.operating_points import (
    OperatingPoint,
    check_target,
    choose_operating_point,
    curves,
)
from calibration.overrides import overrides_path, write_overrides
from calibration.profile import calibration_dir
from edge.store.records import iso, utc_now
from edge.validation.bags import bag_figures
from edge.validation.stats import rate

EXIT_OK, EXIT_FAILED = 0, 1
SCORE_FLOOR = 0.01  # the model keeps every box above this while the set is screened
REPORT_NAME = "thresholds-report.json"


def _setup(args: argparse.Namespace) -> tuple[Path, Path]:
    """The data directory and the device's regression suite folder."""
    from edge.cli import default_data_dir
    from edge.config import load_config

    config = load_config(Path(args.config) if args.config else None)
    data = Path(args.data or config.store.data_dir or default_data_dir())
    return data, Path(config.upgrade.suite_dir or data / "suite")


def _failures(point: OperatingPoint, max_pfa: float | None) -> list[str]:
    out = []
    for c in point.classes:
        if not c.reached:
            out.append(
                f"{c.name}: target Pd {point.target_pd:g} not reached: the highest Pd, at the "
                f"lowest threshold {c.threshold:g}, is {c.pd.value:.3f} ({c.pd.hits}/{c.pd.total})"
            )
    if max_pfa is not None and point.pfa.value > max_pfa:
        out.append(
            f"Pfa {point.pfa.value:.3f} ({point.pfa.hits}/{point.pfa.total} clean bags) at the "
            f"chosen point is over --max-pfa {max_pfa:g}"
        )
    return out


def _write_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as out:
        out.write(json.dumps(doc, indent=2) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def cmd_thresholds(args: argparse.Namespace) -> int:
    from edge.validation.runner import load_for_test

    data, device_suite = _setup(args)
    check_target(args.target_pd, args.max_pfa)
    model_dir, dataset = Path(args.model), Path(args.dataset)
    if not model_dir.is_dir():
        raise CalibrationInputError(f"--model {model_dir}: no such model directory")
    if not dataset.is_dir():
        raise CalibrationInputError(f"--dataset {dataset}: no such data set folder")
    refuse_test_sets(dataset, device_suite)
    calibration_set = read_calibration_set(dataset, args.bag_attribute)
    detector, info = load_for_test(model_dir, SCORE_FLOOR)
    outcomes = screen(detector, calibration_set)
    point = choose_operating_point(outcomes, info.classes, args.target_pd)
    shipped_thresholds = dict(zip(info.classes, info.thresholds, strict=True))
    shipped = bag_figures(outcomes, info.classes, shipped_thresholds)
    failures = _failures(point, args.max_pfa)
    model = {"name": info.name, "version": info.version, "sha256": info.sha256}
    created = iso(utc_now())
    written = None
    if not failures:
        written = write_overrides(
            data,
            {
                "model": model,
                "thresholds": point.thresholds,
                "figures": point.as_json(),
                "dataset": calibration_set.as_json(),
                "created": created,
            },
        )
    report_path = Path(args.report) if args.report else calibration_dir(data) / REPORT_NAME
    doc = {
        "passed": not failures,
        "failures": failures,
        "model": {**model, "dir": str(model_dir)},
        "dataset": calibration_set.as_json(),
        "target_pd": args.target_pd,
        "max_pfa": args.max_pfa,
        "chosen": point.as_json(),
        "shipped": {
            "thresholds": shipped_thresholds,
            "pd": {n: rate(*shipped.pd_counts[n]).as_json() for n in info.classes},
            "pfa": rate(*shipped.pfa_counts).as_json(),
        },
        "curves": curves(outcomes, info.classes),
        "overrides": None if written is None else str(written),
        "report": str(report_path),
        "created": created,
    }
    _write_json(report_path, doc)
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        _print(doc, point, data)
    return EXIT_OK if not failures else EXIT_FAILED


def _interval(r: dict[str, Any]) -> str:
    if r["value"] is None:
        return "-"
    return f"{r['value']:.3f} [{r['low']:.3f}, {r['high']:.3f}] ({r['hits']}/{r['total']})"


def _print(doc: dict[str, Any], point: OperatingPoint, data: Path) -> None:
    verdict = "CALIBRATED" if doc["passed"] else "NOT CALIBRATED"
    print(
        f"operating point {verdict} for {doc['model']['name']}@{doc['model']['version']} on "
        f"{doc['dataset']['bags']} bags of {doc['dataset']['path']} (target Pd {point.target_pd:g})"
    )
    for c in point.classes:
        print(f"  {c.name:<10} threshold {c.threshold:<7g} Pd {_interval(c.pd.as_json())}")
    print(f"  Pfa (all classes, clean bags): {_interval(point.pfa.as_json())}  (95% Wilson)")
    for failure in doc["failures"]:
        print(f"  failed: {failure}")
    if doc["overrides"]:
        print(f"  written to {doc['overrides']}: the service uses them for this model")
    else:
        print(f"  nothing written; the thresholds in force stay ({overrides_path(data)})")
    print(f"  report with the curves: {doc['report']}")


def add_parser(kinds: Any, common: argparse.ArgumentParser) -> None:
    """`edge calibrate thresholds` on the calibrate verb's sub-parsers."""
    p = kinds.add_parser(
        "thresholds",
        parents=[common],
        help="choose the device's per-class thresholds on a calibration set",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, metavar="DIR", help="the model directory")
    p.add_argument(
        "--dataset",
        required=True,
        metavar="DIR",
        help="the calibration set: a COCO data set folder (annotations.json + images), "
        "never a regression or acceptance suite (named --dataset because --data is the "
        "data directory of every verb)",
    )
    p.add_argument(
        "--target-pd", required=True, type=float, metavar="P", help="bag-level Pd per class"
    )
    p.add_argument("--max-pfa", type=float, metavar="F", help="fail (exit 1) when Pfa is over this")
    p.add_argument(
        "--bag-attribute",
        metavar="NAME",
        help="image attribute grouping views into bags (default: one image, one bag)",
    )
    p.add_argument(
        "--report", metavar="FILE", help=f"report file (default DATA/calibration/{REPORT_NAME})"
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_thresholds)
