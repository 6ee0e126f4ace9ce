"""Validation benchmark (issue 5).

(a) COCO box evaluation: our CocoEvaluator against pycocotools' COCOeval, evaluate +
    accumulate + summarize, on one seeded synthetic data set (default 5,000 images, ~15,000
    ground-truth boxes, ~20,000 detections, 5 classes), alternating the two for a few
    rounds. Loading the files is outside the timed part on both sides. Target: >= 10x,
    with the 12 summary figures equal (max abs difference < 1e-9).

(b) A full `edge test` run of the standard suite on the demo model (its own baseline, so
    the baseline run is the candidate's: same graph and thresholds), in-process as the CLI
    runs it: suite and model loading, every frame read, hash-checked and screened, the
    behavioural checks, figures, gate, report file and its row in the image log. Divided by
    pure inference time: `session.run` alone on the same frames (read and preprocessed 64
    at a time outside the timing, then run back to back). Target: <= 1.10. The suite is
    made first (`edge simulate suite`, not timed) unless --suite names one.

    .venv/bin/python scripts/bench_validation.py [--images N] [--rounds N] [--seed S]
        [--part a|b|both] [--suite DIR] [--count N]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import platform
import statistics
import sys
import tempfile
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
TARGET_TEST = 1.10
CHUNK = 64  # (b): frames preprocessed at a time for the bare runs


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


def pure_inference_s(model: Path, suite_dir: Path) -> tuple[float, int, float]:
    """Sum of session.run alone over the suite's frames, as `edge test` feeds them, and the
    process CPU seconds those calls took (all threads). The frames are read and preprocessed
    CHUNK at a time outside the timing, then run back to back: nothing else runs beside or
    between the timed calls (decoding between single calls would leave onnxruntime's
    threads asleep and its caches cold, and make bare inference look slower than it is)."""
    from edge.detector.preprocess import Preprocessor
    from edge.pseudocolor import render_pseudocolor
    from edge.validation.runner import load_for_test
    from edge.validation.suite import load_suite
    from edge.validation.suite_read import load_suite_image

    suite = load_suite(suite_dir)
    detector, info = load_for_test(model, suite.policy.evaluation.score_floor)
    preprocessor = Preprocessor(detector.spec.manifest.input, fresh=True)
    session = detector.session
    outputs = [o.name for o in session.get_outputs()]
    total = cpu = 0.0
    for first in range(0, len(suite.images), CHUNK):
        tensors = []
        for image in suite.images[first : first + CHUNK]:
            frame = load_suite_image(image, suite, channels=info.representation == "dual_energy")
            if info.representation == "dual_energy":
                assert frame.high is not None and frame.low is not None
                tensors.append(preprocessor.from_planes((frame.high, frame.low))[0])
            else:
                rgb = frame.rgb
                if rgb is None:
                    assert frame.high is not None and frame.low is not None
                    rgb = render_pseudocolor(frame.high, frame.low)
                tensors.append(preprocessor.from_rgb(rgb)[0])
        start, cpu_start = time.perf_counter(), time.process_time()
        for tensor in tensors:
            session.run(outputs, {detector.input_name: tensor})
        total += time.perf_counter() - start
        cpu += time.process_time() - cpu_start
    return total, len(suite.images), cpu


def time_edge_test(
    model: Path, suite_dir: Path, tmp: Path
) -> tuple[float, int, dict[str, Any], float]:
    """One `edge test` run in-process, as the CLI runs it: (seconds, exit status, report,
    process CPU seconds)."""
    from edge.cli import main as edge_main

    report = tmp / "report.json"
    report.unlink(missing_ok=True)
    args = ["test", "--model", str(model), "--suite", str(suite_dir), "--baseline", str(model),
            "--report", str(report), "--data", str(tmp / "var")]  # fmt: skip
    start, cpu_start = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        status = edge_main(args)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return seconds, status, json.loads(report.read_text()), cpu


def bench_edge_test(model: Path, suite_dir: Path | None, count: int, rounds: int) -> list[str]:
    from edge.cli import main as edge_main

    lines = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if suite_dir is None:
            suite_dir = tmp / "suite"
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                made = edge_main(
                    ["simulate", "suite", "--out", str(suite_dir), "--count", str(count)]
                )
            assert made == 0
            lines.append(
                f"suite: made {count} bags in {time.perf_counter() - start:.0f} s (not timed)"
            )
        totals, pures, in_run, cpu_test, cpu_pure = [], [], [], [], []
        for r in range(rounds):
            # ABBA: machine load drifts (the machine is shared); alternate the two sides.
            for side in ("test", "pure") if r % 2 == 0 else ("pure", "test"):
                if side == "test":
                    seconds, status, doc, cpu = time_edge_test(model, suite_dir, tmp)
                    totals.append(seconds)
                    cpu_test.append(cpu)
                    in_run.append(seconds / (doc["metrics"]["latency"]["inference_s"] or 1))
                    lines.append(f"round {r + 1}, edge test: {seconds:.1f} s (exit {status})")
                else:
                    seconds, frames, cpu = pure_inference_s(model, suite_dir)
                    pures.append(seconds)
                    cpu_pure.append(cpu)
                    lines.append(f"round {r + 1}, session.run alone: {seconds:.1f} s")
    behaviour = doc["metrics"]["behaviour"]
    extra = sum(c["ran"] for name, c in behaviour.items() if name != "projection")
    extra += 2 * behaviour.get("projection", {}).get("ran", 0)
    total, pure = sum(totals), sum(pures)
    ratio = total / pure
    timing = ", ".join(f"{k.removesuffix('_s')} {v:.1f}" for k, v in doc["timing_s"].items())
    latency = doc["metrics"]["latency"]
    lines += [
        f"edge test: {frames} frames of suite {doc['suite']['name']} (label version "
        f"{doc['suite']['label_version']}), model {doc['model']['id']}, gate "
        f"{'passed' if doc['gate']['passed'] else 'FAILED'}; the behavioural checks ran "
        f"{extra} more inferences; last run's stages s: {timing}; detect() p50 "
        f"{latency['p50_ms']:.0f} ms, p95 {latency['p95_ms']:.0f} ms",
        "",
        "| measure | edge test total s | session.run alone s | ratio | target |",
        "|---|---|---|---|---|",
        f"| full `edge test`, {frames} frames, {rounds} rounds ABBA | {total:.1f} | {pure:.1f} | "
        f"{ratio:.3f} | <= {TARGET_TEST} |",
        "",
        f"target {'met' if ratio <= TARGET_TEST else 'NOT met'}; within each run, total over its "
        f"own session.run time: {', '.join(f'{x:.3f}' for x in in_run)}",
        f"process CPU seconds (all threads; steadier than wall time on a shared machine): "
        f"edge test {sum(cpu_test):.1f}, session.run alone {sum(cpu_pure):.1f}, ratio "
        f"{sum(cpu_test) / (sum(cpu_pure) or 1):.3f}",
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--part", choices=["a", "b", "both"], default="both")
    parser.add_argument("--suite", type=Path, help="(b): an existing suite (default: make one)")
    parser.add_argument("--count", type=int, default=1080, help="(b): bags in the suite made")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "demo-xray-det")
    parser.add_argument("--test-rounds", type=int, default=2, help="(b): ABBA rounds")
    args = parser.parse_args()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"load average {load}; numpy {np.__version__}, pycocotools {version('pycocotools')}"
    )
    if args.part in ("a", "both"):
        print("\n".join(bench_coco(args.images, args.rounds, args.seed)))
    if args.part in ("b", "both"):
        print("\n".join(bench_edge_test(args.model, args.suite, args.count, args.test_rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
