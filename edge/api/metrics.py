"""`GET /metrics`: the service's counters, gauges and latency histograms in the Prometheus
text exposition format 0.0.4, written by hand (no client library needed).

Unauthenticated, like /api/health, which carries the same figures: counts, timings and
states, never images, bag ids or user names. The service binds to 127.0.0.1 unless
configured otherwise; a scraper on another host goes through whatever exposes the port.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from edge.api.context import AppContext
from edge.api.events import EventHub
from edge.pipeline import ScreenedFrame

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds: the pipeline's ingest-to-result latency sits around 0.1-0.5 s on two cores.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MAX_STAGES = 16  # distinct detector stage labels kept (bounded label cardinality)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


class Exposition:
    """Builds one exposition: each metric family once, with HELP and TYPE."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]
    ) -> None:
        self._lines.append(f"# HELP {name} {_escape(help_text)}")
        self._lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self._lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def one(self, name: str, kind: str, help_text: str, value: float) -> None:
        self.family(name, kind, help_text, [({}, value)])

    def histogram(
        self, name: str, help_text: str, series: dict[str, Histogram], label: str
    ) -> None:
        self._lines.append(f"# HELP {name} {_escape(help_text)}")
        self._lines.append(f"# TYPE {name} histogram")
        for key, hist in series.items():
            base = {label: key} if label else {}
            counts, total, count = hist.snapshot()
            for bound, cumulative in zip((*hist.buckets, math.inf), counts, strict=True):
                labels = {**base, "le": _number(bound)}
                self._lines.append(f"{name}_bucket{_labels(labels)} {cumulative}")
            self._lines.append(f"{name}_sum{_labels(base)} {_number(total)}")
            self._lines.append(f"{name}_count{_labels(base)} {count}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


class Histogram:
    """Cumulative bucket counts since start; thread-safe."""

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.buckets = tuple(buckets)
        self._counts = [0] * (len(self.buckets) + 1)  # the last is +Inf only
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    self._counts[i] += 1
                    break
            else:
                self._counts[-1] += 1
            self._sum += value

    def snapshot(self) -> tuple[list[int], float, int]:
        """(cumulative counts per bucket and +Inf, sum, count)."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, running = [], 0
        for c in counts:
            running += c
            cumulative.append(running)
        return cumulative, total, running


class LatencyMetrics:
    """Pipeline subscriber: ingest-to-result latency (from the frame's receive time) and
    the detector's own stage timings, as histograms."""

    def __init__(self) -> None:
        self.total = Histogram()
        self.stages: dict[str, Histogram] = {}
        self._lock = threading.Lock()

    def on_screened(self, frame: ScreenedFrame) -> None:
        received = datetime.fromisoformat(frame.received.replace("Z", "+00:00")).timestamp()
        self.total.observe(max(0.0, time.time() - received))
        for stage, ms in frame.result.timings_ms.items():
            hist = self.stages.get(stage)
            if hist is None:
                with self._lock:
                    if len(self.stages) >= MAX_STAGES:
                        continue
                    hist = self.stages.setdefault(stage, Histogram())
            hist.observe(ms / 1e3)


def render_metrics(ctx: AppContext, hub: EventHub, latency: LatencyMetrics) -> str:
    service = ctx.service
    counters = service.counters
    out = Exposition()
    for name, help_text, value in (
        ("edge_frames_in_total", "Frames received from every source.", counters.frames_in),
        ("edge_frames_screened_total", "Frames the detector screened.", counters.screened),
        ("edge_frames_not_screened_total", "Frames NOT SCREENED.", counters.not_screened),
        ("edge_alarms_total", "Screened frames with an alarm.", counters.alarms),
        (
            "edge_frames_not_logged_total",
            "Frames the image log could not take.",
            counters.not_logged,
        ),
    ):
        out.one(name, "counter", help_text + " Since start.", value)
    out.one("edge_queue_depth", "gauge", "Frames waiting for the detector.", service.queue_depth())
    out.one(
        "edge_uptime_seconds",
        "gauge",
        "Seconds since the pipeline started.",
        round(time.monotonic() - service.started_monotonic, 3),
    )
    out.one(
        "edge_model_loaded", "gauge", "1 when a model screens frames.", service.model_id is not None
    )
    if service.model_id is not None:
        out.family(
            "edge_model_info",
            "gauge",
            "The active model.",
            [({"model": service.model_id, "sha256": service.model_sha256 or ""}, 1)],
        )
    out.one("edge_degraded", "gauge", "1 when not screening normally.", bool(service.degraded()))
    out.one("edge_event_clients", "gauge", "Open live-event streams.", hub.clients)
    if ctx.store is not None:
        health = ctx.store.health()
        out.one(
            "edge_logging_degraded",
            "gauge",
            "1 when the image log cannot write.",
            health["logging"] != "ok",
        )
        out.one(
            "edge_disk_free_bytes", "gauge", "Free bytes for the image log.", health["free_bytes"]
        )
        out.one(
            "edge_images_bytes", "gauge", "Bytes of logged image files.", health["images_bytes"]
        )
        out.one(
            "edge_missing_images",
            "gauge",
            "Logged frames whose image files are gone.",
            health["missing_images"],
        )
    if ctx.sources:
        out.family(
            "edge_source_up",
            "gauge",
            "1 when an ingest source is working.",
            [
                (
                    {"source": str(s.get("source", "?"))},
                    s.get("state") not in ("silent", "connecting", "error"),
                )
                for s in (status() for status in ctx.sources)
            ],
        )
    out.histogram(
        "edge_frame_latency_seconds",
        "Ingest to result, per frame.",
        {"": latency.total},
        label="",
    )
    out.histogram(
        "edge_detector_stage_seconds",
        "Detector stage times per frame (preprocess, inference, postprocess, ...).",
        dict(latency.stages),
        label="stage",
    )
    return out.text()


def metrics_router(ctx: AppContext, hub: EventHub, latency: LatencyMetrics) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus text format 0.0.4: frame counters, queue depth, disk, latency
        histograms. No login needed (the same figures as /api/health)."""
        return PlainTextResponse(render_metrics(ctx, hub, latency), media_type=CONTENT_TYPE)

    return router
