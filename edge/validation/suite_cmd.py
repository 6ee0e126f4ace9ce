"""Suite verbs: `edge simulate suite --out DIR [--count N] [--seed S]` (the standard suite),
`edge suite import SRC --suite DIR ...` (a labelled data set as a new label version) and
`edge suite show DIR` (what a suite holds)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge.errors import BadInputError
from edge.validation.progress import ProgressBar

SIM_DATASET = "sim"
MAX_COUNT = 1_000_000
STANDARD_COUNT = 1080  # edge.sim.suite.STANDARD_COUNT, not imported: OpenCV loads slowly
STANDARD_SEED = 20_000_000  # edge.sim.suite.STANDARD_SEED


def add_simulate_parser(kinds: Any, common: argparse.ArgumentParser) -> None:
    """`suite` beside `dataset` and `scanner` under `edge simulate`."""
    p = kinds.add_parser(
        "suite", parents=[common], help="the standard regression suite of simulated bags"
    )
    p.add_argument("--out", required=True, type=Path, help="suite folder to create")
    p.add_argument(
        "--count",
        type=int,
        default=STANDARD_COUNT,
        help=f"bags, half of them clean (default {STANDARD_COUNT}: every threat cell once)",
    )
    p.add_argument("--seed", type=int, default=STANDARD_SEED, help="first bag's seed")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_simulate)


def add_parser(verbs: Any, common: argparse.ArgumentParser) -> None:
    """The `suite` verb: import, show."""
    p = verbs.add_parser("suite", help="regression suites: import labelled data, show")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = actions.add_parser(
        "import",
        parents=[common],
        help="a labelled COCO data set (e.g. a corrected `edge export`) as a new label version",
    )
    imp.add_argument("source", type=Path, metavar="SRC", help="folder with annotations.json")
    imp.add_argument("--suite", required=True, type=Path, help="suite folder (new or existing)")
    imp.add_argument("--dataset", help="data set name in the suite (default: SRC's name)")
    imp.add_argument(
        "--policy", type=Path, help="policy TOML (default: keep the suite's, or a generic one)"
    )
    imp.add_argument("--name", help="suite name (default: kept, or the folder's name)")
    imp.add_argument(
        "--bag-attribute",
        help="image attribute holding the bag id, grouping views into bags ('none': each "
        "image is a bag; default: 'bag' for an edge export, else none)",
    )
    imp.add_argument("--note", default="", help="why this label version exists")
    imp.add_argument("--json", action="store_true", help="print one JSON document")
    imp.set_defaults(func=run_import)
    show = actions.add_parser("show", parents=[common], help="what a suite holds")
    show.add_argument("suite", type=Path, metavar="DIR")
    show.add_argument("--json", action="store_true", help="print one JSON document")
    show.set_defaults(func=run_show)


def _print(doc: dict[str, Any], text: str, as_json: bool) -> None:
    sys.stdout.write(json.dumps(doc, indent=2) + "\n" if as_json else text + "\n")


def run_simulate(args: argparse.Namespace) -> int:
    from edge.sim.suite import CELL_COUNT, write_standard_dataset
    from edge.validation.suite import load_suite
    from edge.validation.suite_build import DatasetEntry, write_manifest, write_policy

    if not 1 <= args.count <= MAX_COUNT:
        raise BadInputError(f"--count: expected 1..{MAX_COUNT}, got {args.count}")
    out: Path = args.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInputError(f"--out: {out} exists and is not an empty folder")
    bar = ProgressBar.for_terminal()
    dataset = write_standard_dataset(
        out / SIM_DATASET,
        args.count,
        args.seed,
        None if bar is None else (lambda done, total: bar("simulate", done, total)),
    )
    write_policy(out, None)
    known = {f"{SIM_DATASET}/{rel}": sha for rel, sha in dataset.files.items()}
    note = f"edge simulate suite --count {args.count} --seed {args.seed}"
    write_manifest(
        out,
        name="standard",
        label_version=1,
        datasets=[DatasetEntry(SIM_DATASET, None, {"kind": "simulated", "seed": args.seed})],
        known_hashes=known,
        note=note,
    )
    suite = load_suite(out)
    uncovered = dataset.uncovered()
    doc = {
        "out": str(out),
        "name": suite.name,
        "sha256": suite.sha256,
        "label_version": suite.label_version,
        "images": dataset.images,
        "threat_images": dataset.threat_images,
        "clean_images": dataset.images - dataset.threat_images,
        "cells": CELL_COUNT,
        "cells_covered": CELL_COUNT - len(uncovered),
        "uncovered": [vars(c) for c in uncovered[:20]],
        "renders": dataset.attempts,
    }
    text = (
        f"wrote suite {suite.name} to {out}: {dataset.images} bags ({dataset.threat_images} "
        f"with a threat), {CELL_COUNT - len(uncovered)} of {CELL_COUNT} class x clutter x "
        f"occlusion x rotation x size cells covered; sha256 {suite.sha256}"
    )
    _print(doc, text, args.json)
    return 0


def run_import(args: argparse.Namespace) -> int:
    from edge.validation.policy import load_policy
    from edge.validation.suite_build import import_dataset

    policy_text = None
    if args.policy is not None:
        load_policy(args.policy)  # refuse a bad policy with its key paths
        policy_text = args.policy.read_text(encoding="utf-8")
    bag_attribute = args.bag_attribute
    summary = import_dataset(
        args.source,
        args.suite,
        dataset=args.dataset,
        policy_text=policy_text,
        name=args.name,
        bag_attribute="" if bag_attribute == "none" else bag_attribute,
        note=args.note,
    )
    text = (
        f"suite {summary.name} is now label version {summary.label_version} "
        f"({'re-labelled' if summary.replaced else 'added'} data set {summary.dataset}: "
        f"{summary.images} images, {summary.annotations} boxes); sha256 {summary.sha256}"
        + (f"; previous version kept in {summary.previous}" if summary.previous else "")
        + (
            f"\nwarning: {summary.pre_annotations} boxes are still unreviewed pre-annotations"
            if summary.pre_annotations
            else ""
        )
    )
    _print(summary.as_json(), text, args.json)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from edge.validation.suite import POLICY_FILE, load_suite

    suite = load_suite(args.suite)
    doc = {
        "path": str(suite.root),
        "name": suite.name,
        "label_version": suite.label_version,
        "sha256": suite.sha256,
        "created": suite.created,
        "classes": list(suite.classes),
        "datasets": [
            {"name": d.name, "images": len(d.ground_truth.images), "boxes": len(d.ground_truth)}
            for d in suite.datasets
        ],
        "images": len(suite.images),
        "policy": str(suite.root / POLICY_FILE),
        "history": list(suite.document.get("history", [])),
    }
    text = (
        f"suite {suite.name}, label version {suite.label_version}, {len(suite.images)} images "
        f"in {len(suite.datasets)} data set(s), classes {', '.join(suite.classes)}; "
        f"sha256 {suite.sha256}"
    )
    _print(doc, text, args.json)
    return 0
