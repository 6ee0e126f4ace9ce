"""Live results as Server-Sent Events: `GET /api/events`.

The pipeline calls `EventHub.on_screened` on its worker thread; the hub hands the frame to
the event loop (`call_soon_threadsafe`) and the loop copies the encoded event into every
client's bounded queue. A client too slow to keep up never blocks the pipeline or the
other clients: its queue is emptied and replaced by one `resync` event, after which it
should fetch `/api/frames/recent` again. Idle streams get a comment line every heartbeat
so proxies and browsers keep them open; a closed connection removes its client.

Events: `result` (data: the frame record, as GET /api/frames/{id}), `decision` (data: the
decision record), `resync` (data: {"dropped": N}).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from edge.api.access import logged_in
from edge.api.context import AppContext
from edge.api.records import screened_json
from edge.errors import EdgeError
from edge.pipeline import ScreenedFrame

logger = logging.getLogger(__name__)

_RESYNC = b""  # queue marker: the client missed events


class TooManyClientsError(EdgeError):
    http_status = 503


def encode_event(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One SSE message; the JSON has no newlines, so it is one `data:` line."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


@dataclass(eq=False)
class _Client:
    queue: asyncio.Queue[bytes]
    dropped: int = 0


class EventHub:
    """Fans screened frames out to live-event clients; `start` once the loop runs."""

    def __init__(self, *, max_clients: int = 64, queue_size: int = 64, heartbeat_s: float = 15.0):
        self.max_clients = max_clients
        self.queue_size = queue_size
        self.heartbeat_s = heartbeat_s
        self._clients: set[_Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def clients(self) -> int:
        return len(self._clients)

    def start(
        self, subscribe: Callable[[Callable[[ScreenedFrame], None]], Callable[[], None]]
    ) -> None:
        """Bind to the running loop and subscribe to the pipeline (call from the loop)."""
        self._loop = asyncio.get_running_loop()
        self._unsubscribe = subscribe(self.on_screened)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._loop = None

    def on_screened(self, frame: ScreenedFrame) -> None:
        """Pipeline subscriber (worker thread): hand the frame to the loop, never wait."""
        loop = self._loop
        if loop is None or not self._clients:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: the server is stopping
            loop.call_soon_threadsafe(self._publish_frame, frame)

    def publish(self, event: str, data: Any) -> None:
        """Send an event to every client (from any thread)."""
        loop = self._loop
        if loop is None or not self._clients:
            return
        message = encode_event(event, data)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._broadcast, message)

    def _publish_frame(self, frame: ScreenedFrame) -> None:
        self._broadcast(encode_event("result", screened_json(frame), frame.id))

    def _broadcast(self, message: bytes) -> None:
        for client in self._clients:
            try:
                client.queue.put_nowait(message)
            except asyncio.QueueFull:
                while not client.queue.empty():
                    if client.queue.get_nowait() != _RESYNC:
                        client.dropped += 1
                client.dropped += 1
                client.queue.put_nowait(_RESYNC)

    async def stream(self) -> AsyncIterator[bytes]:
        """One client's stream, until it disconnects (its task is then cancelled)."""
        if len(self._clients) >= self.max_clients:
            raise TooManyClientsError(
                f"{self.max_clients} live-event streams are open already: close one"
            )
        return self._messages(_Client(asyncio.Queue(self.queue_size)))

    async def _messages(self, client: _Client) -> AsyncIterator[bytes]:
        # Registered here, not in stream(): a generator never started never runs `finally`.
        self._clients.add(client)
        try:
            yield b"retry: 3000\n: connected\n\n"
            while True:
                try:
                    message = await asyncio.wait_for(client.queue.get(), self.heartbeat_s)
                except TimeoutError:
                    yield b": heartbeat\n\n"
                    continue
                if message == _RESYNC:
                    dropped, client.dropped = client.dropped, 0
                    logger.warning("a live-event client fell behind: %d events dropped", dropped)
                    yield encode_event("resync", {"dropped": dropped})
                else:
                    yield message
        finally:
            self._clients.discard(client)


def events_router(ctx: AppContext, hub: EventHub) -> APIRouter:
    router = APIRouter(tags=["events"])

    @router.get(
        "/api/events",
        dependencies=[Depends(logged_in)],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def events() -> StreamingResponse:
        """Live results as Server-Sent Events: `result` per screened frame (the frame
        record), `decision` per operator decision, `resync` when this client fell behind."""
        return StreamingResponse(
            await hub.stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
