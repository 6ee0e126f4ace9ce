"""`edge serve` as a real process: a real uvicorn on a real port, the demo feeder pushing
bags through the real serial ingest path, logins, live events, decisions, SIGTERM."""

from __future__ import annotations

import json
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

from edge.auth.demo import DEMO_PASSWORD

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


def next_result(stream: Iterator[str], timeout: float) -> dict[str, Any]:
    """The data of the next `result` event on an SSE line stream."""
    deadline = time.monotonic() + timeout
    event = None
    for line in stream:
        assert time.monotonic() < deadline, "no result event in time"
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "result":
            return dict(json.loads(line.removeprefix("data: ")))
    raise AssertionError("event stream ended")


def login(client: httpx.Client, name: str) -> str:
    response = client.post("/api/login", json={"name": name, "password": DEMO_PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["csrf_token"])


@pytest.mark.slow
def test_serve_screens_demo_bags_and_stops_cleanly_on_sigterm(
    served: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    process, url, log = served
    with httpx.Client(base_url=url, timeout=10.0) as client:
        health = poll_json(client, process, log, "/api/health", lambda h: True, timeout=60)
        assert health["model"] == "demo-xray-det@1.0.0"
        # The demo made its users and said how to log in.
        assert "demo login" in log.read_text() and DEMO_PASSWORD in log.read_text()
        assert client.get("/api/frames").status_code == 401
        assert client.get("/", follow_redirects=False).headers["location"] == "/login"

        client.headers["X-CSRF-Token"] = login(client, "operator")
        assert client.get("/api/me").json()["role"] == "operator"
        assert "NOT SCREENED" in client.get("/").text

        # A bag the demo scanner sends over the serial link arrives as a live event.
        with client.stream("GET", "/api/events", timeout=httpx.Timeout(10.0, read=60.0)) as events:
            assert events.status_code == 200
            assert events.headers["content-type"].startswith("text/event-stream")
            event = next_result(events.iter_lines(), timeout=60)
        assert event["source"] == "demo" and event["state"] == "SCREENED"
        health = poll_json(
            client, process, log, "/api/health", lambda h: h["screened"] >= 2, timeout=30
        )
        assert health["status"] == "ok", health["degraded"]

        frames = client.get("/api/frames", params={"limit": 8, "source": "demo"}).json()
        assert frames["total"] >= 2 and len(frames["items"]) >= 2
        assert {f["source"] for f in frames["items"]} == {"demo"}
        assert client.get("/api/frames/recent").json()["items"][0]["source"] == "demo"
        newest = frames["items"][0]
        image = client.get(f"/api/frames/{newest['id']}/image")
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/png"
        bgr = cv2.imdecode(np.frombuffer(image.content, np.uint8), cv2.IMREAD_COLOR)
        assert bgr.shape == (newest["height"], newest["width"], 3)
        material = client.get(f"/api/frames/{event['id']}/image", params={"view": "material"})
        assert material.status_code == 200

        # The operator decides on the bag from the event; the log keeps who did.
        decided = client.post(f"/api/frames/{event['id']}/decision", json={"decision": "search"})
        assert decided.status_code == 201, decided.text
        assert decided.json()["user"] == "operator"
        searched = client.get("/api/frames", params={"decision": "search"}).json()
        assert [f["id"] for f in searched["items"]] == [event["id"]]

        # A vendor may not decide; a technician uploads through the HTTP ingest path.
        with httpx.Client(base_url=url, timeout=60.0) as vendor:
            csrf = login(vendor, "vendor")
            refused = vendor.post(
                f"/api/frames/{event['id']}/decision",
                json={"decision": "clear"},
                headers={"X-CSRF-Token": csrf},
            )
            assert refused.status_code == 403
        with httpx.Client(base_url=url, timeout=60.0) as technician:
            csrf = login(technician, "technician")
            ok, png = cv2.imencode(".png", np.full((64, 96, 3), 200, np.uint8))
            uploaded = technician.post(
                "/api/frames",
                files={"file": ("rescan.png", png.tobytes(), "image/png")},
                data={"bag": "rescan-1"},
                headers={"X-CSRF-Token": csrf},
            )
            assert uploaded.status_code == 201, uploaded.text
            assert (uploaded.json()["bag"], uploaded.json()["source"]) == ("rescan-1", "upload")

        metrics = client.get("/metrics").text
        assert "edge_frames_in_total" in metrics and "edge_frame_latency_seconds_bucket" in metrics

    process.send_signal(signal.SIGTERM)
    try:
        status = process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"service still running 10 s after SIGTERM:\n{log.read_text()}")
    assert status == 0, log.read_text()
