"""GET /metrics: valid Prometheus text format 0.0.4 with the service's figures."""

from __future__ import annotations

import math
import re
from collections import defaultdict

import numpy as np

from edge.api.metrics import Exposition, Histogram
from edge.frames import Frame
from edge.pipeline import Pipeline

from .accounts import TestClient

SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>(?:[a-zA-Z_]\w*="(?:[^"\\]|\\.)*",?)*)\})?'
    r" (?P<value>-?(?:\d+(?:\.\d+)?(?:e[+-]?\d+)?|\+Inf|-Inf|NaN))$"
)


def parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by name; fails on any line outside the format or a sample before its TYPE."""
    assert text.endswith("\n")
    typed: dict[str, str] = {}
    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            assert name not in typed, f"{name} declared twice"
            typed[name] = kind
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name = match["name"]
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in typed else name
        assert family in typed, f"{name} before its TYPE"
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"] or ""))
        samples[name].append((labels, float(match["value"])))
    return samples


def test_metrics_are_valid_and_count_frames(client: TestClient, service: Pipeline) -> None:
    for shade in (0, 90, 200):
        service.submit(Frame(rgb=np.full((40, 60, 3), shade, np.uint8)), source="t", bag="b")
    response = client.get("/metrics")  # no login: the figures of /api/health
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = parse(response.text)
    value = {name: found[0][1] for name, found in samples.items() if len(found) == 1}
    assert value["edge_frames_in_total"] == 3
    assert value["edge_frames_screened_total"] == 3
    assert value["edge_alarms_total"] == 3  # the tiny model always sees a knife
    assert value["edge_frames_not_screened_total"] == 0
    assert value["edge_queue_depth"] == 0 and value["edge_model_loaded"] == 1
    assert samples["edge_model_info"][0][0]["model"] == "tiny@0.1.0"
    buckets = samples["edge_frame_latency_seconds_bucket"]
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and buckets[-1][0]["le"] == "+Inf" and counts[-1] == 3
    assert value["edge_frame_latency_seconds_count"] == 3
    stages = {labels["stage"] for labels, _ in samples["edge_detector_stage_seconds_count"]}
    assert {"preprocess", "inference", "postprocess"} <= stages


def test_histogram_buckets_are_cumulative() -> None:
    hist = Histogram([0.1, 1.0])
    for value in (0.05, 0.1, 0.5, 3.0, math.inf):
        hist.observe(value)
    counts, total, count = hist.snapshot()
    assert (counts, count) == ([2, 3, 5], 5) and total == math.inf


def test_label_values_are_escaped() -> None:
    out = Exposition()
    out.family("x_info", "gauge", "odd labels", [({"model": 'a"b\\c\nd'}, 1)])
    samples = parse(out.text())
    assert samples["x_info"] == [({"model": 'a\\"b\\\\c\\nd'}, 1.0)]
