"""Reassemble scanner frames from FRAME_START / FRAME_DATA / FRAME_END packets (pure).

Every frame the scanner starts gets exactly one answer: an `AssembledFrame` (complete and
its SHA-256 matches) or a `Rejected` with a reason (as soon as the frame is known to be
bad, or at its FRAME_END). A FRAME_END that belongs to no frame (its FRAME_START was lost on
the line) yields an `Orphan`, answered with an ERROR packet since there is no frame id to
ACK. Nothing half-received is ever returned.
"""

from __future__ import annotations

import bisect
import hashlib
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.frames import Frame
from edge.ingest.link_protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    FrameStart,
    Packet,
    PacketType,
    PayloadError,
    parse_frame_data,
    parse_frame_end,
    parse_frame_start,
)


@dataclass(frozen=True)
class AssembledFrame:
    """A whole, hash-checked frame. `high`/`low`: (height, width) uint16; `low` is None for
    a single-energy scanner (`channels == ("high",)`). `sha256`: hex of the image bytes."""

    start: FrameStart
    high: npt.NDArray[np.uint16]
    low: npt.NDArray[np.uint16] | None
    sha256: str

    @property
    def frame(self) -> str:
        """The scanner's frame id."""
        return self.start.frame

    @property
    def bag(self) -> str:
        return self.start.bag

    @property
    def lane(self) -> int:
        return self.start.lane

    @property
    def view(self) -> str:
        return self.start.view

    @property
    def channels(self) -> tuple[str, ...]:
        return self.start.channels

    def to_frame(self) -> Frame:
        """As the pipeline's Frame; meta carries the scanner ids and the image hash."""
        meta: dict[str, Any] = {
            "source": "serial",
            "scanner_frame": self.frame,
            "bag": self.bag,
            "lane": self.lane,
            "view": self.view,
            "sha256": self.sha256,
        }
        return Frame(high=self.high, low=self.low, meta=meta)


@dataclass(frozen=True)
class Rejected:
    """A frame that will not be stored; the scanner gets ACK `rejected` with `reason`."""

    frame: str
    reason: str


@dataclass(frozen=True)
class Orphan:
    """A FRAME_END (or the end of an unreadable FRAME_START) with no frame id to answer."""

    reason: str


AssemblyEvent = AssembledFrame | Rejected | Orphan


@dataclass
class AssemblerStats:
    started: int = 0
    assembled: int = 0
    rejected: int = 0
    orphans: int = 0
    orphan_data: int = 0  # FRAME_DATA packets with no frame open


@dataclass
class _Open:
    """The frame being received. `answered`: already rejected, swallow its DATA and END.
    `orphan_reason`: no id to reject with; answer its END with an Orphan."""

    frame: str | None
    start: FrameStart | None = None
    buffer: bytearray = field(default_factory=bytearray)
    starts: list[int] = field(default_factory=list)  # received ranges [starts[i], ends[i])
    ends: list[int] = field(default_factory=list)
    received: int = 0
    answered: bool = False
    orphan_reason: str | None = None


class FrameAssembler:
    """Feed it FRAME_* packets in arrival order; it returns the answers they complete."""

    def __init__(self, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.stats = AssemblerStats()
        self._open: _Open | None = None

    @property
    def open_frame(self) -> str | None:
        """The scanner id of the frame being received, if any."""
        return self._open.frame if self._open is not None else None

    def reset(self) -> None:
        """Drop the frame being received without an answer (the line it came on is gone)."""
        self._open = None

    def feed(self, packet: Packet) -> list[AssemblyEvent]:
        """The answers this packet completes (none for most FRAME_DATA); other types: []."""
        if packet.type is PacketType.FRAME_START:
            return self._start(packet.payload)
        if packet.type is PacketType.FRAME_DATA:
            return self._data(packet.payload)
        if packet.type is PacketType.FRAME_END:
            return self._end(packet.payload)
        return []

    def _start(self, payload: bytes) -> list[AssemblyEvent]:
        events: list[AssemblyEvent] = []
        start: FrameStart | None
        frame: str | None
        try:
            start = parse_frame_start(payload, max_frame_bytes=self.max_frame_bytes)
            frame, problem = start.frame, ""
        except PayloadError as exc:
            start, frame, problem = None, exc.frame, exc.message
        old = self._open
        # The same id again is the scanner restarting that frame: one answer, for the new one.
        # An old frame with no id cannot be answered; the scanner's own time-out covers it.
        if old is not None and not old.answered and old.frame not in (None, frame):
            events.append(
                self._reject(old, "incomplete: a new FRAME_START arrived before its FRAME_END")
            )
        self.stats.started += 1
        if start is not None:
            self._open = _Open(start.frame, start, bytearray(start.nbytes))
        elif frame is not None:
            self._open = _Open(frame)
            events.append(self._reject(self._open, problem))
        else:
            self._open = _Open(None, orphan_reason=f"unusable FRAME_START: {problem}")
        return events

    def _data(self, payload: bytes) -> list[AssemblyEvent]:
        current = self._open
        if current is None:
            self.stats.orphan_data += 1
            return []
        if current.answered or current.start is None:
            return []
        try:
            offset, chunk = parse_frame_data(payload)
        except PayloadError as exc:
            return [self._reject(current, exc.message)]
        size, end = len(current.buffer), offset + len(chunk)
        if end > size:
            return [
                self._reject(
                    current,
                    f"FRAME_DATA out of range: offset {offset} + {len(chunk)} bytes "
                    f"passes the frame's {size} bytes",
                )
            ]
        if not chunk:
            return []
        i = bisect.bisect_right(current.starts, offset)
        if (i > 0 and current.ends[i - 1] > offset) or (
            i < len(current.starts) and current.starts[i] < end
        ):
            return [
                self._reject(
                    current, f"FRAME_DATA overlaps: bytes {offset}..{end} were already received"
                )
            ]
        current.buffer[offset:end] = chunk
        current.received += len(chunk)
        _add_range(current.starts, current.ends, i, offset, end)
        return []

    def _end(self, payload: bytes) -> list[AssemblyEvent]:
        current, self._open = self._open, None
        if current is None:
            self.stats.orphans += 1
            return [Orphan("FRAME_END with no frame open (its FRAME_START was lost)")]
        if current.orphan_reason is not None:
            self.stats.orphans += 1
            return [Orphan(current.orphan_reason)]
        if current.answered or current.start is None:
            return []
        try:
            digest = parse_frame_end(payload)
        except PayloadError as exc:
            return [self._reject(current, exc.message)]
        size = len(current.buffer)
        if current.received != size:
            return [
                self._reject(current, f"incomplete: received {current.received} of {size} bytes")
            ]
        actual = hashlib.sha256(current.buffer).digest()
        if actual != digest:
            return [
                self._reject(
                    current,
                    f"SHA-256 mismatch: image hashes to {actual.hex()[:16]}..., "
                    f"FRAME_END says {digest.hex()[:16]}...",
                )
            ]
        self.stats.assembled += 1
        return [_assembled(current.start, current.buffer, actual.hex())]

    def _reject(self, current: _Open, reason: str) -> Rejected:
        assert current.frame is not None
        current.answered = True
        current.buffer = bytearray()  # free the image memory now, not at the next START
        self.stats.rejected += 1
        return Rejected(current.frame, reason)


def _add_range(starts: list[int], ends: list[int], i: int, lo: int, hi: int) -> None:
    """Insert [lo, hi) at index i (it overlaps nothing), merging with touching neighbours."""
    if i > 0 and ends[i - 1] == lo:
        i -= 1
        ends[i] = hi
    else:
        starts.insert(i, lo)
        ends.insert(i, hi)
    if i + 1 < len(starts) and starts[i + 1] == ends[i]:
        ends[i] = ends[i + 1]
        del starts[i + 1], ends[i + 1]


def _assembled(start: FrameStart, buffer: bytearray, sha256: str) -> AssembledFrame:
    planes = np.frombuffer(buffer, dtype="<u2").reshape(
        len(start.channels), start.height, start.width
    )
    if sys.byteorder != "little":
        planes = planes.astype(np.uint16)
    high = planes[0]
    low = planes[1] if len(start.channels) == 2 else None
    return AssembledFrame(start, high, low, sha256)
