#!/usr/bin/env python3
"""Evaluate a detector on fresh simulated bags: COCO mAP (pycocotools) and bag-level Pd/Pfa.

    .venv/bin/python scripts/evaluate_detector.py --model models/demo-xray-det \
        --count 600 --seed 9000000 [--calibrate 400 --calibrate-seed 8000000 --write]

With --calibrate, per-class thresholds are first chosen on a separate validation set of
bags (the highest threshold reaching --target-pd per class) and, with --write, stored in the
model's manifest. Then the test set (seeds never used in training, which starts at
1,000,000 and draws far fewer bags than that) is scored at the manifest's thresholds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.detector.detector import Detector  # noqa: E402
from edge.frames import Frame  # noqa: E402
from edge.sim.dataset import coco_categories, frame_record  # noqa: E402
from edge.sim.scene import simulate_bag  # noqa: E402
from edge.validation.bags import BagOutcome, bag_figures, bag_outcome, choose_thresholds  # noqa: E402

SCORE_FLOOR = 0.001  # COCO practice: score every candidate for AP, threshold afterwards


def low_threshold_copy(model_dir: Path, tmp: Path) -> Path:
    """The same graph with every threshold at SCORE_FLOOR (thresholds are outside the hash)."""
    dest = tmp / model_dir.name
    dest.mkdir()
    shutil.copy(model_dir / "model.onnx", dest / "model.onnx")
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["thresholds"] = {"default": SCORE_FLOOR}
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


def run_bags(
    detector: Detector, count: int, seed: int, threat_ratio: float
) -> tuple[dict[str, Any], list[dict[str, Any]], list[BagOutcome], float]:
    """Simulate and screen `count` bags; COCO ground truth, results, bag outcomes, ms/frame."""
    classes = detector.class_names
    images, annotations, results, outcomes = [], [], [], []
    infer_ms = []
    for i in range(count):
        sim = simulate_bag(seed + i, threat_ratio=threat_ratio)
        record, anns = frame_record(sim, i + 1, f"{i + 1:06d}")
        images.append(record)
        annotations.extend(anns)
        run = detector.detect(Frame(high=sim.high, low=sim.low))
        infer_ms.append(sum(run.timings_ms.values()))
        det = run.detections
        for box, score, cid in zip(det.boxes, det.scores, det.class_ids, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append(
                {
                    "image_id": i + 1,
                    "category_id": int(cid) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
        truth = [classes.index(a.label) for a in sim.annotations]
        outcomes.append(bag_outcome(truth, det.class_ids, det.scores, len(classes)))
    for k, ann in enumerate(annotations, start=1):
        ann["id"] = k
    gt = {"images": images, "annotations": annotations, "categories": coco_categories()}
    return gt, results, outcomes, float(np.median(infer_ms))


def coco_map(
    gt: dict[str, Any], results: list[dict[str, Any]]
) -> tuple[list[float], dict[str, float]]:
    """pycocotools' twelve summary figures and AP@0.5 per class."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results) if results else COCO()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]  # (T, R, K, A, M)
    per_class = {}
    for k, cat in enumerate(gt["categories"]):
        p = precision[0, :, k, 0, 2]
        per_class[cat["name"]] = float(np.mean(p[p > -1])) if (p > -1).any() else float("nan")
    return [float(s) for s in ev.stats], per_class


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "demo-xray-det")
    ap.add_argument("--count", type=int, default=600)
    ap.add_argument("--seed", type=int, default=9_000_000)
    ap.add_argument("--threat-ratio", type=float, default=0.5)
    ap.add_argument("--calibrate", type=int, default=0, help="validation bags for thresholds")
    ap.add_argument("--calibrate-seed", type=int, default=8_000_000)
    ap.add_argument("--target-pd", type=float, default=0.95)
    ap.add_argument(
        "--write", action="store_true", help="store calibrated thresholds in the manifest"
    )
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    manifest_path = args.model / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        detector = Detector.load(low_threshold_copy(args.model, Path(tmp)))
        classes = detector.class_names
        if args.calibrate:
            _, _, val_outcomes, _ = run_bags(
                detector, args.calibrate, args.calibrate_seed, args.threat_ratio
            )
            thresholds = choose_thresholds(val_outcomes, classes, args.target_pd)
            val = bag_figures(val_outcomes, classes, thresholds)
            print(
                f"calibrated on {args.calibrate} bags (seeds {args.calibrate_seed}+): {thresholds}; "
                f"validation Pd {val.pd} Pfa {val.pfa:.3f}"
            )
            if args.write:
                manifest["thresholds"] = {"default": min(thresholds.values()), **thresholds}
                manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
                print(f"wrote thresholds to {manifest_path}")
        gt, results, outcomes, median_ms = run_bags(
            detector, args.count, args.seed, args.threat_ratio
        )
    stats, ap50 = coco_map(gt, results)
    figures = bag_figures(outcomes, classes, manifest["thresholds"])
    report = {
        "model": f"{manifest['name']}@{manifest['version']}",
        "test_set": {
            "count": args.count,
            "seed": args.seed,
            "threat_ratio": args.threat_ratio,
            "threat_bags": sum(1 for o in outcomes if o.true_classes),
            "clean_bags": figures.pfa_counts[1],
        },
        "coco_stats": stats,
        "map50": stats[1],
        "map": stats[0],
        "ap50_per_class": ap50,
        "thresholds": manifest["thresholds"],
        "pd": figures.pd,
        "pd_counts": figures.pd_counts,
        "pfa": figures.pfa,
        "pfa_counts": figures.pfa_counts,
        "median_detect_ms": median_ms,
        "seconds": round(time.time() - start, 1),
    }
    print(f"mAP@0.5 {stats[1]:.4f}  mAP@[.5:.95] {stats[0]:.4f}")
    print("AP@0.5 per class: " + ", ".join(f"{k} {v:.3f}" for k, v in ap50.items()))
    print(
        "Pd per class: "
        + ", ".join(
            f"{k} {v:.3f} ({figures.pd_counts[k][0]}/{figures.pd_counts[k][1]})"
            for k, v in figures.pd.items()
        )
    )
    print(f"Pfa {figures.pfa:.3f} ({figures.pfa_counts[0]}/{figures.pfa_counts[1]} clean bags)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
