"""Validation benchmark (issue 5).

(a) COCO box evaluation: our CocoEvaluator against pycocotools' COCOeval, evaluate +
    accumulate + summarize, on one seeded synthetic data set (default 5,000 images, ~15,000
    ground-truth boxes, ~20,000 detections, 5 classes), alternating the two for a few
    rounds. Loading the files is outside the timed part on both sides. Target: >= 10x,
    with the 12 summary figures equal (max abs difference < 1e-9).

    .venv/bin/python scripts/bench_validation.py [--images N] [--rounds N] [--seed S]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.sim.coco_results import EvalDataSpec, generate_eval_data  # noqa: E402
from edge.validation.coco import parse_detections, parse_ground_truth  # noqa: E402
from edge.validation.cocoeval import CocoEvaluator  # noqa: E402

TARGET = 10.0


def pycocotools_run(doc: dict[str, Any], results: list[dict[str, Any]]) -> tuple[Any, Any]:
    """COCO objects for pycocotools (built outside the timed part, as files would be)."""
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(doc)
        gt.createIndex()
        dt = gt.loadRes(copy.deepcopy(results))
    return gt, dt


def time_pycocotools(gt: Any, dt: Any) -> tuple[float, np.ndarray]:
    from pycocotools.cocoeval import COCOeval

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return time.perf_counter() - start, np.asarray(ev.stats)


def time_ours(gt: Any, dt: Any) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    evaluator = CocoEvaluator(gt)
    evaluator.update(dt)
    metrics = evaluator.compute()
    return time.perf_counter() - start, np.asarray(metrics.stats)


def bench_coco(images: int, rounds: int, seed: int) -> list[str]:
    spec = EvalDataSpec(
        images=images, categories=5, gt_per_image=3.0, dets_per_gt=1.0, false_positives=1.0,
        crowd_rate=0.01, score_decimals=3,
    )  # fmt: skip
    doc, results = generate_eval_data(spec, seed)
    ref_gt, ref_dt = pycocotools_run(doc, results)
    our_gt = parse_ground_truth(doc, "synthetic")
    our_dt = parse_detections(results, our_gt, "synthetic")
    lines = [
        f"data: {len(doc['images'])} images, {len(doc['annotations'])} ground-truth boxes "
        f"({int(our_gt.iscrowd.sum())} crowd), {len(results)} detections, "
        f"{len(doc['categories'])} classes, seed {seed}; {rounds} rounds, alternated",
    ]
    ref_times, our_times, diffs = [], [], []
    for r in range(rounds):
        # ABBA order, so drift in machine load falls on both sides alike.
        order = ("pycocotools", "ours") if r % 2 == 0 else ("ours", "pycocotools")
        stats: dict[str, np.ndarray] = {}
        for name in order:
            if name == "pycocotools":
                seconds, stats[name] = time_pycocotools(ref_gt, ref_dt)
                ref_times.append(seconds)
            else:
                seconds, stats[name] = time_ours(our_gt, our_dt)
                our_times.append(seconds)
            lines.append(f"round {r + 1}, {name}: {seconds:.3f} s")
        diffs.append(float(np.abs(stats["pycocotools"] - stats["ours"]).max()))
    ref_s, our_s = statistics.median(ref_times), statistics.median(our_times)
    ratio = ref_s / our_s
    lines += [
        "",
        "| measure | pycocotools median s | ours median s | ratio | max abs diff, 12 stats | target |",
        "|---|---|---|---|---|---|",
        f"| COCO bbox evaluate + accumulate + summarize | {ref_s:.3f} | {our_s:.4f} | "
        f"{ratio:.1f}x | {max(diffs):.3g} | >= {TARGET:.0f}x, diff < 1e-9 |",
        "",
        f"target {'met' if ratio >= TARGET and max(diffs) < 1e-9 else 'NOT met'}",
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"load average {load}; numpy {np.__version__}, pycocotools {version('pycocotools')}"
    )
    print("\n".join(bench_coco(args.images, args.rounds, args.seed)))
    # TODO(issue 5, part b): a full `edge test` run (model + suite + gates) timed end to end.
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
