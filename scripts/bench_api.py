"""API benchmark: live-event latency with 10 clients, and image renders per second.

(a) From a RESULT being stored to its SSE `result` event reaching a client: a server
    process (this script with --serve) runs the service's parts as `edge serve` wires them
    (durable Store, Pipeline, the demo model in its own process, the FastAPI app on a real
    uvicorn bound to a free port). Its store records the CLOCK_MONOTONIC time each
    result's row is committed; this process holds 10 real HTTP clients (httpx, one
    asyncio loop) on GET /api/events, records when each event's last line arrives, and
    subtracts. CLOCK_MONOTONIC is one clock for every process on the machine. Frames
    (simulated bags resized to 1024x768, dual energy) are ingested at a steady rate
    once all 10 clients are connected.
(b) GET /api/frames/{id}/image for a 1024x768 frame, one client, one request at a time,
    for each view with and without boxes: renders per second and milliseconds per render
    over HTTP; and the same renderings timed in-process without HTTP for reference.

    Thumbnails (`?max=256`, the history page's and the strip's) get rows of their own.

    .venv/bin/python scripts/bench_api.py [--frames N] [--rate HZ] [--clients N] [--renders N]
        [--thumb PIXELS]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.api.png import by_strips, encode_png  # noqa: E402
from edge.api.views import (  # noqa: E402
    MATERIAL_PALETTE,
    boxed_view,
    grey_view,
    material_index,
)
from edge.frames import Frame  # noqa: E402
from edge.pseudocolor import render_pseudocolor  # noqa: E402
from edge.sim.scene import simulate_bag  # noqa: E402

WIDTH, HEIGHT = 1024, 768
VIEWS = ("pseudo", "high", "low", "material")


def bag_frames(count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` simulated dual-energy bags resized to 1024x768 uint16 planes."""
    frames = []
    for i in range(count):
        bag = simulate_bag(seed + i)
        frames.append(
            tuple(
                cv2.resize(plane, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
                for plane in (bag.high, bag.low)
            )
        )
    return frames  # type: ignore[return-value]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


# ---------------------------------------------------------------------------------------
# The server process


class TimedStore:
    """The real Store, noting when each result row is committed (CLOCK_MONOTONIC)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.stored_at: dict[str, float] = {}

    def add_result(self, frame_id: str, *args: Any, **kwargs: Any) -> Any:
        row = self._store.add_result(frame_id, *args, **kwargs)
        self.stored_at[frame_id] = time.monotonic()
        return row

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def serve(args: argparse.Namespace) -> int:
    import socket

    import uvicorn

    from edge.api.app import AppContext, create_app
    from edge.auth import UserStore
    from edge.config import DEFAULT_MODEL_DIR
    from edge.pipeline import Intake, Pipeline
    from edge.service import load_detector
    from edge.store import Store

    data = Path(args.serve)
    store = Store(data)
    timed = TimedStore(store)
    detector, error = load_detector(DEFAULT_MODEL_DIR)
    if detector is None:
        raise SystemExit(f"no model: {error}")
    pipeline = Pipeline(detector, store=timed)
    users = UserStore(data)
    users.add_user("bench", "technician", "bench-password")
    token = users.create_token("bench", "bench_api.py")
    ctx = AppContext(service=pipeline, users=users, store=store, max_event_clients=64)
    # IPPROTO_TCP named, as edge.service binds it: asyncio sets TCP_NODELAY only on sockets
    # whose proto says TCP, and without it small responses wait ~40 ms for delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(ctx), log_level="warning", access_log=False, timeout_graceful_shutdown=2
        )
    )
    api = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    api.start()
    while not server.started:
        time.sleep(0.02)
    bags = bag_frames(min(args.frames, 20), seed=4000)
    print(f"ready {sock.getsockname()[1]} {token}", flush=True)

    if sys.stdin.readline().strip() != "go":
        return 1
    period = 1.0 / args.rate
    tickets = []
    start = time.monotonic()
    for i in range(args.frames):
        time.sleep(max(0.0, start + i * period - time.monotonic()))
        high, low = bags[i % len(bags)]
        intake = Intake(source="bench", bag=f"bench-{i:05d}")
        tickets.append(pipeline.ingest(Frame(high=high, low=low), intake))
    for ticket in tickets:
        ticket.screened.result(120)
    Path(args.times).write_text(json.dumps(timed.stored_at))
    latency = pipeline.latency_ms()
    print(f"fed {args.frames} {json.dumps(latency)}", flush=True)
    sys.stdin.readline()  # the parent's image renders, then "stop"
    server.should_exit = True
    api.join(10)
    pipeline.close()
    detector.close()
    users.close()
    store.close()
    return 0


# ---------------------------------------------------------------------------------------
# The clients


async def listen(
    url: str, token: str, received: list[tuple[str, float]], counts: dict[str, int]
) -> None:
    """One SSE client: (frame id, arrival time) for every result event."""
    headers = {"Authorization": f"Bearer {token}"}
    timeout = httpx.Timeout(10.0, read=None)
    async with (
        httpx.AsyncClient(timeout=timeout) as client,
        client.stream("GET", f"{url}/api/events", headers=headers) as response,
    ):
        response.raise_for_status()
        event, frame_id = None, None
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("id: "):
                frame_id = line[4:]
            elif line == "":
                if event == "result" and frame_id is not None:
                    received.append((frame_id, time.monotonic()))
                elif event is not None:
                    counts[event] += 1
                event, frame_id = None, None


def metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


async def run_clients(
    url: str, token: str, clients: int, frames: int, child: subprocess.Popen[str]
) -> tuple[list[list[tuple[str, float]]], dict[str, int]]:
    received: list[list[tuple[str, float]]] = [[] for _ in range(clients)]
    counts: dict[str, int] = defaultdict(int)
    tasks = [asyncio.create_task(listen(url, token, r, counts)) for r in received]
    deadline = time.monotonic() + 30
    while await asyncio.to_thread(metric, url, "edge_event_clients") < clients:
        if time.monotonic() > deadline:
            raise SystemExit("the SSE clients did not all connect")
        await asyncio.sleep(0.1)
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()
    deadline = time.monotonic() + 60 + frames * 2
    while any(len(r) < frames for r in received) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return received, dict(counts)


def time_renders(
    url: str, token: str, frame_ids: list[str], renders: int, thumb_max: int | None
) -> list[str]:
    """Rows for (b), per view and boxes: `renders` different frames one request at a time
    (each rendered afresh), then one frame `renders` times (served from the PNG cache);
    with `thumb_max`, thumbnails (`?max=`) too."""
    rows = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        cases: list[tuple[str, int, int | None]] = [
            (view, boxes, None) for view in VIEWS for boxes in (0, 1)
        ]
        cases += [(view, 1, thumb_max) for view in ("pseudo", "material")] if thumb_max else []
        for view, boxes, most in cases:
            params: dict[str, str | int] = {"view": view, "boxes": boxes}
            if most:
                params["max"] = most
            fresh, cached, size, shape = [], [], 0, (0, 0)
            for frame_id in frame_ids[:renders]:
                t0 = time.perf_counter()
                response = client.get(f"/api/frames/{frame_id}/image", params=params)
                fresh.append((time.perf_counter() - t0) * 1e3)
                response.raise_for_status()
                size = len(response.content)
            decoded = cv2.imdecode(np.frombuffer(response.content, np.uint8), -1)
            assert decoded is not None, "the answer is not a PNG"
            shape = decoded.shape
            for _ in range(renders):
                t0 = time.perf_counter()
                client.get(f"/api/frames/{frame_ids[0]}/image", params=params)
                cached.append((time.perf_counter() - t0) * 1e3)
            rows.append(
                f"| {view}{f' max={most}' if most else ''} | {'yes' if boxes else 'no'} | "
                f"{shape[1]}x{shape[0]} | "
                f"{1e3 / statistics.mean(fresh):.1f} | {statistics.median(fresh):.1f} | "
                f"{percentile(fresh, 99):.1f} | {statistics.median(cached):.1f} | "
                f"{size / 1e3:.0f} |"
            )
    return rows


def time_in_process(renders: int) -> list[str]:
    """The same renderings without HTTP or the store (PNG encoding included)."""
    high, low = bag_frames(1, seed=4000)[0]
    detections = [
        {"class": "knife", "score": 0.91, "box": [300.0, 200.0, 520.0, 330.0]},
        {"class": "gun", "score": 0.55, "box": [600.0, 400.0, 820.0, 560.0]},
    ]
    make: dict[str, Callable[[], tuple[np.ndarray, np.ndarray | None]]] = {
        "pseudo": lambda: (by_strips(render_pseudocolor, high, low), None),
        "high": lambda: (grey_view(high), None),
        "low": lambda: (grey_view(low), None),
        "material": lambda: (material_index(high, low), MATERIAL_PALETTE),
    }
    rows = []
    for view, render in make.items():
        for boxes in (False, True):
            times = []
            for _ in range(renders):
                t0 = time.perf_counter()
                image, palette = render()
                if boxes:
                    image, palette = boxed_view(image, palette, detections)
                encode_png(image, palette)
                times.append((time.perf_counter() - t0) * 1e3)
            rows.append(
                f"| {view} | {'yes' if boxes else 'no'} | {statistics.median(times):.1f} | "
                f"{percentile(times, 99):.1f} |"
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150, help="frames fed for (a)")
    parser.add_argument("--rate", type=float, default=4.0, help="frames per second for (a)")
    parser.add_argument("--clients", type=int, default=10, help="SSE clients for (a)")
    parser.add_argument("--renders", type=int, default=40, help="requests per row of (b)")
    parser.add_argument(
        "--thumb", type=int, default=256, help="thumbnail size for (b)'s ?max= rows (0: none)"
    )
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--times", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args)

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        times_file = Path(tmp) / "stored.json"
        child = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                str(Path(tmp) / "data"),
                "--times",
                str(times_file),
                "--frames",
                str(args.frames),
                "--rate",
                str(args.rate),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None and child.stdin is not None
            _, port, token = child.stdout.readline().split()
            url = f"http://127.0.0.1:{port}"
            received, counts = asyncio.run(
                run_clients(url, token, args.clients, args.frames, child)
            )
            fed = child.stdout.readline()
            stored = json.loads(times_file.read_text())
            pipeline_ms = json.loads(fed.split(" ", 2)[2])
            http_rows = time_renders(url, token, sorted(stored), args.renders, args.thumb)
            child.stdin.write("stop\n")
            child.stdin.flush()
            child.wait(30)
        finally:
            if child.poll() is None:
                child.kill()
    local_rows = time_in_process(args.renders)

    latencies = [
        (arrived - stored[frame_id]) * 1e3
        for events in received
        for frame_id, arrived in events
        if frame_id in stored
    ]
    missing = sum(args.frames - len(events) for events in received)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"load average {load}; Python {platform.python_version()}"
    )
    print(
        f"parameters: {args.frames} frames {WIDTH}x{HEIGHT} dual energy at {args.rate:g}/s, "
        f"{args.clients} SSE clients (httpx, one asyncio loop, this process), server in its "
        "own process (uvicorn, demo model in a child process, real image log)"
    )
    print(
        "pipeline p50/p99 ms: "
        + ", ".join(f"{k} {v['p50']}/{v['p99']}" for k, v in pipeline_ms.items())
    )
    print()
    print("| measure | n | p50 ms | p99 ms | max ms | target |")
    print("|---|---|---|---|---|---|")
    print(
        f"| result row committed -> SSE event at client ({args.clients} clients) | "
        f"{len(latencies)} | {percentile(latencies, 50):.1f} | {percentile(latencies, 99):.1f} | "
        f"{max(latencies, default=float('nan')):.1f} | p99 < 50 |"
    )
    print(f"\nevents missing: {missing}; other events: {counts or 'none'}")
    print(
        f"\n(b) GET /api/frames/{{id}}/image, one client, sequential requests: {args.renders} "
        "different frames each rendered afresh (renders/s, p50, p99), then one frame "
        "repeated (cached p50)"
    )
    print("| view | boxes | size | renders/s | p50 ms | p99 ms | cached p50 ms | PNG kB |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(http_rows))
    print(
        "\nthe same renderings in-process, no HTTP, no image log read (render from the "
        "uint16 planes + boxes + PNG encode); target < 30 ms"
    )
    print("| view | boxes | p50 ms | p99 ms |")
    print("|---|---|---|---|")
    print("\n".join(local_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
