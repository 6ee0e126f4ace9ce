"""Technician verbs `edge calibrate scanner|testpiece|thresholds` (CONTRACT.md section 4;
thresholds in calibration/thresholds_cmd.py).

Exit status: 0 done, 1 a check ran and failed (a test piece below its pass levels),
2 bad input (scans that cannot calibrate, files that are not there).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from calibration import history, thresholds_cmd
from calibration import profile as profiles
from calibration.errors import CalibrationInputError
from calibration.flatfield import Scan, assess, build_flatfield, drift
from calibration.materials import WedgeScan, accuracy, fit_curves
from calibration.testpiece import PassLevels, read_test_piece

EXIT_OK, EXIT_FAILED = 0, 1
TARGET_NONUNIFORMITY = 0.01


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


def _setup(args: argparse.Namespace) -> tuple[Path, Any]:
    from edge.cli import default_data_dir
    from edge.config import load_config

    config = load_config(Path(args.config) if args.config else None)
    return Path(args.data or config.store.data_dir or default_data_dir()), config


def _sha256(path: Path) -> str:
    from edge.ingest.images import dual_energy_paths

    files = [path] if path.is_file() else list(dual_energy_paths(path))
    digest = hashlib.sha256()
    for f in files:
        if f.is_file():
            digest.update(f.read_bytes())
    return digest.hexdigest()


def load_scan(path: Path, kind: str) -> Scan:
    """A raw 16-bit scan file (two-page TIFF or PNG pair) as a Scan."""
    from edge.ingest.images import load_image

    frame = load_image(Path(path))
    if frame.high is None:
        raise CalibrationInputError(
            f"{kind} scan {path} is an 8-bit pseudo-colour image; calibration needs the "
            "scanner's raw 16-bit channels (two-page TIFF or a _high/_low PNG pair)"
        )
    channels = {"high": frame.high}
    if frame.low is not None:
        channels["low"] = frame.low
    return Scan(str(path), channels)


def cmd_scanner(args: argparse.Namespace) -> int:
    data, _ = _setup(args)
    dark = [load_scan(Path(p), "dark") for p in args.dark]
    air = [load_scan(Path(p), "air") for p in args.air]
    field = build_flatfield(dark, air)
    figures = assess(dark, air, field)
    previous = profiles.active(data)
    report: dict[str, Any] = {
        "nonuniformity_before": figures.before,
        "nonuniformity_after": figures.after,
        "fixed_pattern_before": figures.fixed_pattern_before,
        "fixed_pattern_after": figures.fixed_pattern_after,
        "target": TARGET_NONUNIFORMITY,
        "target_met": all(v <= TARGET_NONUNIFORMITY for v in figures.after.values()),
        "bad_pixels": len(figures.bad_pixels),
        "bad_pixel_columns": figures.bad_pixels,
        "drift_since": None if previous is None else previous.name,
        "drift": {} if previous is None else drift(previous.flatfield, field),
    }
    curves = None if previous is None else previous.curves
    sources = [{"kind": "dark", "path": s.name, "sha256": _sha256(Path(s.name))} for s in dark]
    sources += [{"kind": "air", "path": s.name, "sha256": _sha256(Path(s.name))} for s in air]
    if args.wedges:
        curves, report["materials"] = _fit_materials(args.wedges, field)
        sources += [{"kind": "wedge", "path": p, "sha256": _sha256(Path(p))} for p in args.wedges]
    else:
        carried = previous.name if previous is not None and curves is not None else None
        report["materials"] = {"carried_from": carried}
    saved = profiles.save(data, field, curves, sources, report)
    doc = {"profile": saved.name, "path": str(profiles.calibration_dir(data)), **report}
    if args.json:
        _print_json(doc)
        return EXIT_OK
    print(f"calibration profile {saved.name} written to {doc['path']} and active")
    for c in field.channels:
        print(
            f"  {c:<4} non-uniformity of an air scan: {figures.before[c]:.2%} uncorrected, "
            f"{figures.after[c]:.2%} corrected (target {TARGET_NONUNIFORMITY:.0%})"
        )
    print(f"  bad pixels: {len(figures.bad_pixels)} {figures.bad_pixels}")
    for c, d in report["drift"].items():
        print(
            f"  drift since {previous.name if previous else '-'} ({c}): response "
            f"{d['response_change']:+.2%}, offset {d['offset_change_counts']:+.1f} counts"
        )
    for material, acc in report["materials"].get("held_out", {}).items():
        print(f"  {material}: {acc['accuracy']:.1%} of held-out wedge pixels classified right")
    if not report["target_met"]:
        print("  warning: the corrected non-uniformity misses the target; check the scans")
    return EXIT_OK


def _fit_materials(paths: list[str], field: Any) -> tuple[Any, dict[str, Any]]:
    if len(paths) < 2:
        raise CalibrationInputError(
            f"need at least 2 step-wedge scans (curves from half, accuracy on the other half), "
            f"got {len(paths)}"
        )
    scans = []
    for p in paths:
        raw = load_scan(Path(p), "step-wedge")
        corrected = field.correct(raw.channels)
        if "low" not in corrected:
            raise CalibrationInputError(f"step-wedge scan {p} has no low-energy channel")
        scans.append(WedgeScan(p, corrected["high"], corrected["low"]))
    half = (len(scans) + 1) // 2
    curves = fit_curves(scans[:half])
    return curves, {
        "fitted_on": [s.name for s in scans[:half]],
        "held_out": accuracy(scans[half:], curves),
        "renderer_thresholds": accuracy(scans[half:], None),
    }


def cmd_testpiece(args: argparse.Namespace) -> int:
    data, config = _setup(args)
    if args.history:
        return _show_history(data, args.json)
    if args.image is None:
        raise CalibrationInputError("give the test-piece scan IMAGE, or --history")
    scan = load_scan(Path(args.image), "test-piece")
    channels, profile_name = scan.channels, None
    if args.raw:
        current = profiles.active(data)
        if current is None:
            raise CalibrationInputError(
                "--raw: no calibration profile yet; run `edge calibrate scanner`"
            )
        channels, profile_name = current.flatfield.correct(channels), current.name
    piece = config.calibration.testpiece
    levels = PassLevels(
        piece.max_wire_mm, piece.min_steel_mm, piece.max_grating_mm, piece.max_organic_mm
    )
    reading = read_test_piece(channels["high"], levels)
    entry = {
        "image": str(args.image),
        "sha256": _sha256(Path(args.image)),
        "profile": profile_name,
        "levels": vars(levels),
        "failures": reading.failures(levels),
        **reading.as_json(),
    }
    stored = history.record(data, entry)
    if args.json:
        _print_json(stored)
    else:
        verdict = "PASSED" if reading.passed else "FAILED"
        print(f"test piece {verdict} ({stored['at']}, {args.image})")
        print(
            f"  thinnest wire seen:        {_mm(reading.thinnest_wire_mm)} (pass: <= {levels.max_wire_mm:g} mm)"
        )
        print(
            f"  wire seen through steel:   {_mm(reading.thickest_steel_mm)} (pass: >= {levels.min_steel_mm:g} mm)"
        )
        print(
            f"  finest grating resolved:   {_mm(reading.finest_grating_mm)} bars (pass: <= {levels.max_grating_mm:g} mm)"
        )
        print(
            f"  thinnest organic seen:     {_mm(reading.thinnest_organic_mm)} (pass: <= {levels.max_organic_mm:g} mm)"
        )
        for failure in entry["failures"]:
            print(f"  failed: {failure}")
    return EXIT_OK if reading.passed else EXIT_FAILED


def _mm(value: float | None) -> str:
    return "none" if value is None else f"{value:g} mm"


def _show_history(data: Path, as_json: bool) -> int:
    found = history.entries(data)
    if as_json:
        _print_json({"checks": found})
        return EXIT_OK
    if not found:
        print("no test-piece checks recorded yet")
        return EXIT_OK
    print(
        f"{'date (UTC)':<21} {'result':<7} {'wire':>6} {'steel':>6} {'grating':>8} {'organic':>8}"
    )
    for e in found:
        cells = [
            "-" if e.get(k) is None else f"{e[k]:g}"
            for k in (
                "thinnest_wire_mm",
                "thickest_steel_mm",
                "finest_grating_mm",
                "thinnest_organic_mm",
            )
        ]
        result = "pass" if e.get("passed") else "FAIL"
        print(f"{e['at']:<21} {result:<7} {cells[0]:>6} {cells[1]:>6} {cells[2]:>8} {cells[3]:>8}")
    print("(mm; wire, grating and organic: smaller is better; steel: larger is better)")
    return EXIT_OK


def add_parsers(verbs: Any, common: argparse.ArgumentParser) -> None:
    """`edge calibrate scanner|testpiece|thresholds` on the CLI's verb parser."""
    p = verbs.add_parser(
        "calibrate", help="scanner calibration, the test-piece check and operating points"
    )
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    s = kinds.add_parser(
        "scanner", parents=[common], help="a new calibration profile from dark and air scans"
    )
    s.add_argument("--dark", nargs="+", required=True, metavar="FILE", help="dark scans (beam off)")
    s.add_argument(
        "--air", nargs="+", required=True, metavar="FILE", help="air scans (beam on, tunnel empty)"
    )
    s.add_argument(
        "--wedges",
        nargs="+",
        metavar="FILE",
        help="raw scans of the step-wedge set (material curves)",
    )
    s.add_argument("--json", action="store_true", help="print one JSON document")
    s.set_defaults(func=cmd_scanner)
    t = kinds.add_parser("testpiece", parents=[common], help="check a scan of the test piece")
    t.add_argument("image", nargs="?", metavar="IMAGE", help="the test-piece scan (16-bit)")
    t.add_argument(
        "--raw", action="store_true", help="IMAGE is raw: apply the active profile first"
    )
    t.add_argument("--history", action="store_true", help="show the recorded checks")
    t.add_argument("--json", action="store_true", help="print one JSON document")
    t.set_defaults(func=cmd_testpiece)
    thresholds_cmd.add_parser(kinds, common)
