"""The `edge` command (CONTRACT.md section 4).

Exit status: 0 success, 1 a check ran and failed, 2 bad usage or bad input. Verbs whose
output scripts read take `--json` and then print exactly one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edge.config import DEFAULT_MODEL_DIR
from edge.errors import EdgeError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def default_model_dir() -> Path:
    """The model `detect` and `serve` use unless told: $EDGE_MODEL, else the shipped demo."""
    return Path(os.environ.get("EDGE_MODEL", str(DEFAULT_MODEL_DIR)))


def default_data_dir() -> Path:
    """The data directory unless told: $EDGE_DATA, else ./var."""
    return Path(os.environ.get("EDGE_DATA", "./var"))


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


def _error(message: str) -> None:
    sys.stderr.write(f"edge: {message}\n")


# ----------------------------------------------------------------------------- verbs


def cmd_detect(args: argparse.Namespace) -> int:
    from edge.detector import Detector
    from edge.ingest.images import load_image

    detector = Detector.load(args.model)
    failed = 0
    records: list[dict[str, Any]] = []
    for path in args.images:
        try:
            frame = load_image(Path(path))
            run = detector.detect(frame)
        except EdgeError as exc:
            failed += 1
            _error(exc.message if str(path) in exc.message else f"{path}: {exc.message}")
            records.append({"path": str(path), "error": exc.message})
            continue
        height, width = frame.shape
        timings = {k: round(v, 2) for k, v in run.timings_ms.items()}
        found = run.detections.to_list(detector.class_names)
        record: dict[str, Any] = {
            "path": str(path),
            "width": width,
            "height": height,
            "model": detector.model_id,
            "detections": found,
            "timings_ms": timings,
        }
        records.append(record)
        if not args.json:
            timing = ", ".join(f"{k} {v:.1f} ms" for k, v in timings.items())
            print(
                f"{path}: {len(run.detections)} detection(s), {width}x{height}, "
                f"model {detector.model_id} ({timing})"
            )
            for det in found:
                x1, y1, x2, y2 = det["box"]
                print(
                    f"  {det['class']:<9} {det['score']:.3f}  [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]"
                )
    if args.json:
        _print_json(
            {
                "model": detector.model_id,
                "model_sha256": detector.model_sha256,
                "images": records,
                "failed": failed,
            }
        )
    return EXIT_BAD_INPUT if failed else EXIT_OK


def cmd_version(args: argparse.Namespace) -> int:
    """Software version, active model and schema version; read-only (safe beside `serve`)."""
    from edge.about import format_version_report, version_report
    from edge.config import load_config

    config = load_config(Path(args.config) if args.config else None)
    data = Path(args.data or config.store.data_dir or default_data_dir())
    report = version_report(data, config.model.dir or default_model_dir())
    if args.json:
        _print_json(report)
    else:
        sys.stdout.write(format_version_report(report))
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the installation; 1 when any check FAILs."""
    from edge.doctor import format_findings, report, run_checks

    findings = run_checks(
        Path(args.config) if args.config else None,
        Path(args.data) if args.data else None,
        default_model_dir(),
        default_data_dir=default_data_dir(),
    )
    doc = report(findings)
    if args.json:
        _print_json(doc)
    else:
        sys.stdout.write(format_findings(findings))
    return EXIT_OK if doc["ok"] else EXIT_CHECK_FAILED


# Verbs that must not write to the data directory, their own log file included.
READ_ONLY_VERBS = frozenset({"doctor", "support-bundle"})


def _setup_logging(args: argparse.Namespace) -> None:
    """JSON logs as the configuration says (edge/logs.py): the journal under systemd, else
    DATA/logs/edge.log when the data directory exists, and WARNING+ on stderr."""
    from edge.config import EdgeConfig, load_config
    from edge.logs import setup_logging

    config_path = getattr(args, "config", None)
    try:
        config = load_config(Path(config_path) if config_path else None)
    except EdgeError:  # the verb reports a bad configuration itself
        config = EdgeConfig()
    settings = config.logging
    data = Path(getattr(args, "data", None) or config.store.data_dir or default_data_dir())
    verb = getattr(args, "verb", None)
    log_file = None
    # `serve` creates the data directory; other verbs do not make one just for their log.
    if verb is not None and verb not in READ_ONLY_VERBS and (verb == "serve" or data.is_dir()):
        log_file = settings.file or data / "logs" / "edge.log"
    setup_logging(
        level=settings.level,
        log_file=log_file,
        max_bytes=settings.max_mb << 20,
        backups=settings.backups,
        journal=settings.journal,
        verbose=bool(getattr(args, "verbose", False)),
    )


def _asks_version(argv: Sequence[str]) -> bool:
    """`edge [--data D] [--config C] --version ...`: the option before any verb (a verb's own
    `--version`, as in `edge bundle build`, is that verb's)."""
    if "-h" in argv or "--help" in argv:
        return False
    value_next = False
    for arg in argv:
        if value_next:
            value_next = False
        elif arg == "--version":
            return True
        elif arg in ("--data", "--config"):
            value_next = True
        elif not arg.startswith("-"):
            return False  # a verb
    return False


def version_parser() -> argparse.ArgumentParser:
    """`edge --version [--data D] [--config C] [--json]`."""
    parser = argparse.ArgumentParser(prog="edge --version", add_help=False)
    parser.add_argument("--version", action="store_true", required=True)
    parser.add_argument("--data")
    parser.add_argument("--config")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.set_defaults(func=cmd_version)
    return parser


def cmd_simulate_dataset(args: argparse.Namespace) -> int:
    from edge.sim.dataset import write_dataset

    if args.count < 1 or args.count > 1_000_000:
        raise EdgeError(f"--count: expected 1..1000000, got {args.count}")
    if not 0.0 <= args.threat_ratio <= 1.0:
        raise EdgeError(f"--threat-ratio: expected 0..1, got {args.threat_ratio}")
    summary = write_dataset(Path(args.out), args.count, args.seed, args.threat_ratio)
    doc = {
        "out": str(summary.path),
        "annotations_file": str(summary.path / "annotations.json"),
        "images": summary.images,
        "annotations": summary.annotations,
        "threat_images": summary.threat_images,
        "seed": args.seed,
    }
    if args.json:
        _print_json(doc)
    else:
        print(
            f"wrote {summary.images} images ({summary.threat_images} with threats, "
            f"{summary.annotations} boxes) to {summary.path}"
        )
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from edge.config import load_config

    if args.check_config:
        load_config(Path(args.check_config))
        print(f"{args.check_config}: valid")
        return EXIT_OK
    config = load_config(Path(args.config) if args.config else None)
    from edge.config import FolderSource, SerialSource
    from edge.service import run_service

    # Command-line options override the file; the file overrides the defaults.
    sources = list(config.sources)
    sources += [SerialSource(type="serial", url=url) for url in args.serial]
    sources += [FolderSource(type="folder", path=Path(p)) for p in args.folder]
    config = config.model_copy(
        update={
            "server": config.server.model_copy(
                update={
                    k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None
                }
            ),
            "model": config.model.model_copy(
                update={"dir": args.model or config.model.dir or default_model_dir()}
            ),
            "sources": sources,
        }
    )
    data = args.data or config.store.data_dir or default_data_dir()
    run_service(
        config,
        data_dir=Path(data),
        demo=config.demo.enabled and not args.no_demo,
        model_override=args.model,  # an explicit model runs as given, outside the model store
    )
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """Logged frames to a COCO data set. Opens the store like `serve` does, start-up checks
    included: run it against a data directory no running service is writing."""
    from edge.config import load_config
    from edge.export import export_dataset, known_model_classes
    from edge.store import Store

    config = load_config(Path(args.config) if args.config else None)
    data = Path(args.data or config.store.data_dir or default_data_dir())
    if not (data / "edge.db").is_file():
        raise EdgeError(f"--data: no image log in {data} (expected {data / 'edge.db'})")
    # Category names come from the models' class lists: the ones given, else the active one.
    model_dirs = args.model or [config.model.dir or default_model_dir()]
    classes = known_model_classes(model_dirs, required=bool(args.model))
    with Store(data) as store:
        summary = export_dataset(
            store,
            args.out,
            since=args.since,
            until=args.until,
            alarms=args.alarms,
            not_screened=args.not_screened,
            disputed=args.disputed,
            class_name=args.class_name,
            sample=args.sample,
            seed=args.seed,
            model_classes=classes,
        )
    if summary.export_id is None:
        _error(f"warning: export written to {summary.out} but not recorded in the image log")
    if args.json:
        _print_json(summary.as_json())
    else:
        skipped = sum(len(ids) for ids in summary.skipped.values())
        print(
            f"exported {summary.images} images ({summary.disputed} disputed, "
            f"{summary.annotations} pre-annotations) to {summary.out}"
            + (f"; {skipped} frames skipped (images missing or deleted)" if skipped else "")
        )
    return EXIT_OK


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", help="data directory (default: $EDGE_DATA, else ./var)")
    common.add_argument("--config", help="configuration file (TOML)")
    common.add_argument("-v", "--verbose", action="store_true", help="log more")

    parser = argparse.ArgumentParser(prog="edge", description="Offline X-ray screening appliance.")
    parser.add_argument(
        "--version",
        action="store_true",
        help="print the software version, the active model and the database schema, and exit "
        "(with --data, --config, --json; read-only)",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = verbs.add_parser("detect", parents=[common], help="detections for image files")
    p.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="PNG/JPEG pseudo-colour, 16-bit PNG pair or TIFF, DICOS DX (.dcs)",
    )
    p.add_argument("--model", type=Path, default=default_model_dir(), help="model directory")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_detect)

    p = verbs.add_parser("serve", parents=[common], help="run the appliance service and UI")
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="HTTP port (default 8080)")
    p.add_argument(
        "--model",
        type=Path,
        help="run this model directory as given (default: the data directory's active model; "
        "a fresh data directory starts with the shipped demo model)",
    )
    p.add_argument("--no-demo", action="store_true", help="do not feed simulated bags")
    p.add_argument(
        "--serial",
        action="append",
        default=[],
        metavar="PORT",
        help="a scanner on this serial device or pyserial URL (repeatable)",
    )
    p.add_argument(
        "--folder",
        action="append",
        default=[],
        metavar="DIR",
        help="a hot folder the scanner drops image files into (repeatable)",
    )
    p.add_argument("--check-config", metavar="FILE", help="validate a configuration file and exit")
    p.set_defaults(func=cmd_serve)

    p = verbs.add_parser(
        "export", parents=[common], help="logged frames to a COCO data set for labelling"
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="folder to create (absent or empty; never overwritten)",
    )
    p.add_argument("--since", metavar="T", help="frames received at or after T (ISO 8601, UTC)")
    p.add_argument("--until", metavar="T", help="frames received before T (ISO 8601, UTC)")
    p.add_argument(
        "--alarms",
        action="store_true",
        help="frames the model alarmed on (--alarms, --not-screened, --disputed together: "
        "frames matching any of them)",
    )
    p.add_argument(
        "--not-screened", action="store_true", help="frames NOT SCREENED (or not yet screened)"
    )
    p.add_argument(
        "--disputed", action="store_true", help="frames where the operator disagreed with the model"
    )
    p.add_argument(
        "--class",
        dest="class_name",
        metavar="C",
        help="only frames whose latest result detected class C",
    )
    p.add_argument("--sample", type=int, metavar="N", help="a random sample of N selected frames")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="the sample's seed (default 0)")
    p.add_argument(
        "--model",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="model directory whose class list names the categories (repeatable; "
        "default: the active model)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_export)

    p = verbs.add_parser(
        "doctor",
        parents=[common],
        help="check the installation: config, disk, database, model, keys, ports, calibration",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_doctor)

    from edge import support_cmd

    support_cmd.add_parser(verbs, common)

    from edge.validation import eval_cmd

    eval_cmd.add_parser(verbs, common)

    from edge.validation import acceptance_cmd, suite_cmd, test_cmd

    test_cmd.add_parser(verbs, common)
    acceptance_cmd.add_parser(verbs, common)
    suite_cmd.add_parser(verbs, common)

    from edge.auth.commands import add_users_parser

    add_users_parser(verbs, common)

    from edge.upgrade.commands import add_parsers as add_upgrade_parsers

    add_upgrade_parsers(verbs, common)

    from calibration.commands import add_parsers as add_calibrate_parsers

    add_calibrate_parsers(verbs, common)

    p = verbs.add_parser("simulate", help="synthetic dual-energy data")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    d = kinds.add_parser("dataset", parents=[common], help="a COCO data set of simulated bags")
    d.add_argument("--out", required=True, help="output folder")
    d.add_argument("--count", type=int, default=100, help="number of bags (default 100)")
    d.add_argument("--seed", type=int, default=0, help="first bag's seed (default 0)")
    d.add_argument("--threat-ratio", type=float, default=0.5, help="share of threat bags")
    d.add_argument("--json", action="store_true", help="print one JSON document")
    d.set_defaults(func=cmd_simulate_dataset)
    sc = kinds.add_parser(
        "scanner", parents=[common], help="emulate a scanner on a serial port (sends bags)"
    )
    from edge.sim.scanner import add_scanner_arguments, run_scanner_command

    add_scanner_arguments(sc)
    sc.set_defaults(func=run_scanner_command)
    suite_cmd.add_simulate_parser(kinds, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = version_parser() if _asks_version(argv) else build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except EdgeError as exc:
        _error(exc.message)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
