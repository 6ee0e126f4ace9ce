"""`edge serve` as a real process: a real uvicorn on a real port, the demo feeder, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port = free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k not in ("EDGE_MODEL", "EDGE_DATA")}
    command = [sys.executable, "-m", "edge.cli", "serve", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--data", str(tmp_path / "data")],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process, f"http://127.0.0.1:{port}", log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def poll_json(
    client: httpx.Client,
    process: subprocess.Popen[bytes],
    log: Path,
    path: str,
    ready: Callable[[Any], bool],
    timeout: float,
) -> Any:
    """GET `path` until `ready(json)`; fails with the service's log if it dies or times out."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"service exited early:\n{log.read_text()}"
        try:
            response = client.get(path)
            if response.status_code == 200 and ready(response.json()):
                return response.json()
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{path} not ready in {timeout} s:\n{log.read_text()}"
        time.sleep(0.2)


@pytest.mark.slow
def test_serve_screens_demo_bags_and_stops_cleanly_on_sigterm(
    served: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    process, url, log = served
    with httpx.Client(base_url=url, timeout=5.0) as client:
        health = poll_json(client, process, log, "/api/health", lambda h: True, timeout=60)
        assert health["model"] == "demo-xray-det@1.0.0"
        health = poll_json(
            client, process, log, "/api/health", lambda h: h["screened"] >= 2, timeout=30
        )
        assert health["status"] == "ok", health["degraded"]

        frames = client.get("/api/frames", params={"limit": 8}).json()
        assert len(frames) >= 2
        assert {f["source"] for f in frames} == {"demo"}
        newest = frames[0]
        image = client.get(f"/api/frames/{newest['id']}/image")
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/png"
        bgr = cv2.imdecode(np.frombuffer(image.content, np.uint8), cv2.IMREAD_COLOR)
        assert bgr.shape == (newest["height"], newest["width"], 3)
        assert "NOT SCREENED" in client.get("/").text

    process.send_signal(signal.SIGTERM)
    try:
        status = process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"service still running 10 s after SIGTERM:\n{log.read_text()}")
    assert status == 0, log.read_text()
