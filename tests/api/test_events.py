"""Live events (SSE) through a real uvicorn on a free port with real HTTP clients; the hub's
slow-client handling in its own event loop."""

from __future__ import annotations

import asyncio
import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import uvicorn

from edge.api.app import AppContext, create_app
from edge.api.events import EventHub
from edge.auth import UserStore
from edge.frames import Result
from edge.pipeline import Pipeline, ScreenedFrame
from edge.store import Store


@pytest.fixture
def served(service: Pipeline, users: UserStore, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, operator's bearer token) of a real server in a thread."""
    store = Store(tmp_path / "log")
    # The fixture's pipeline has no store: give this one a log so decisions work.
    pipeline = Pipeline(service.screener, store=store)
    ctx = AppContext(
        service=pipeline,
        users=users,
        store=store,
        event_heartbeat_s=0.3,
        max_event_clients=3,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(
        uvicorn.Config(create_app(ctx), log_level="warning", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", users.create_token("olga")
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        pipeline.close()
        store.close()


class Listener:
    """An SSE client on its own thread: every message as (event, data, comments)."""

    def __init__(self, url: str, token: str) -> None:
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.status: int | None = None
        self._client = httpx.Client(timeout=httpx.Timeout(10.0, read=30.0))
        self._stop = threading.Event()
        self._url, self._token = url, token
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            with self._client.stream("GET", f"{self._url}/api/events", headers=headers) as r:
                self.status = r.status_code
                message: dict[str, Any] = {}
                for line in r.iter_lines():
                    if self._stop.is_set():
                        return
                    if line == "":
                        self.messages.put(message)
                        message = {}
                    elif line.startswith(":"):
                        message.setdefault("comments", []).append(line[1:].strip())
                    else:
                        field, _, value = line.partition(":")
                        message[field] = value.removeprefix(" ")
                if r.status_code != 200:
                    self.messages.put({"error": r.read().decode()})
        except httpx.HTTPError:
            pass

    def next(self, wanted: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next message with event `wanted` (or comment `wanted`), skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if message.get("event") == wanted or wanted in message.get("comments", []):
                return message

    def close(self) -> None:
        self._stop.set()
        self._client.close()
        self._thread.join(5)


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    [line] = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


def test_results_decisions_and_heartbeats_reach_every_client(
    served: tuple[str, str], users: UserStore
) -> None:
    url, token = served
    listeners = [Listener(url, token) for _ in range(2)]
    try:
        for listener in listeners:
            assert "connected" in listener.next("connected")["comments"]
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
            ok, data = cv2.imencode(".png", np.full((40, 60, 3), 90, np.uint8))
            assert ok
            uploaded = client.post("/api/frames", files={"file": ("bag.png", data.tobytes())})
            assert uploaded.status_code == 201, uploaded.text
            frame_id = uploaded.json()["id"]
            record = client.get(f"/api/frames/{frame_id}").json()
            # The event is the frame's record; one frame's also lists its decisions.
            del record["decisions"]
            for listener in listeners:
                event = listener.next("result")
                assert event["id"] == frame_id
                assert json.loads(event["data"]) == {**record, "decision": None}
            decided = client.post(f"/api/frames/{frame_id}/decision", json={"decision": "search"})
            assert decided.status_code == 201, decided.text
            for listener in listeners:
                assert json.loads(listener.next("decision")["data"]) == decided.json()
                assert "heartbeat" in listener.next("heartbeat", timeout=5)["comments"]
            assert metric(url, "edge_event_clients") == 2
    finally:
        for listener in listeners:
            listener.close()
    deadline = time.monotonic() + 5
    while metric(url, "edge_event_clients") != 0:  # disconnects are noticed and cleaned up
        assert time.monotonic() < deadline, "closed streams still counted"
        time.sleep(0.1)


def test_events_need_a_login_and_are_bounded(served: tuple[str, str]) -> None:
    url, token = served
    assert httpx.get(f"{url}/api/events").status_code == 401
    listeners = [Listener(url, token) for _ in range(3)]
    try:
        for listener in listeners:
            listener.next("connected")
        with httpx.Client(timeout=5) as client:
            response = client.get(f"{url}/api/events", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "too_many_clients"
    finally:
        for listener in listeners:
            listener.close()


def screened(n: int) -> ScreenedFrame:
    return ScreenedFrame(
        id=f"f-{n:06d}",
        received="2026-01-01T00:00:00.000Z",
        bag=f"bag-{n}",
        source="test",
        result=Result.not_screened("test"),
        shape=(2, 2),
        rgb=np.zeros((2, 2, 3), np.uint8),
    )


def test_a_slow_client_is_told_to_resync_and_never_blocks_the_pipeline() -> None:
    async def scenario() -> list[bytes]:
        hub = EventHub(queue_size=2, heartbeat_s=60)
        hub.start(lambda callback: lambda: None)
        stream = await hub.stream()
        first = await anext(stream)  # connected; the client is registered now
        started = time.perf_counter()
        worker = threading.Thread(target=lambda: [hub.on_screened(screened(i)) for i in range(5)])
        worker.start()
        worker.join()
        assert time.perf_counter() - started < 0.5  # handing over never waits for clients
        await asyncio.sleep(0.05)  # let the loop run the handed-over broadcasts
        hub.on_screened(screened(5))
        await asyncio.sleep(0.05)
        got = [first, await anext(stream), await anext(stream)]
        await stream.aclose()
        assert hub.clients == 0
        return got

    connected, resync, after = asyncio.run(scenario())
    assert b"connected" in connected
    assert resync.startswith(b"event: resync\n") and b'{"dropped":5}' in resync
    assert after.startswith(b"event: result\nid: f-000005\n")
