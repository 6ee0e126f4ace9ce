"""Frame reassembly: whole frames come out hash-checked, every damaged one is rejected with
a reason, and nothing half-received is ever returned."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pytest

from edge.ingest.frame_assembler import (
    AssembledFrame,
    AssemblyEvent,
    FrameAssembler,
    Orphan,
    Rejected,
)
from edge.ingest.link_protocol import (
    FrameStart,
    Packet,
    PacketType,
    frame_data_payload,
    heartbeat_payload,
)

RNG = np.random.default_rng(5)
HIGH = RNG.integers(0, 65536, (30, 40), dtype=np.uint16)
LOW = RNG.integers(0, 65536, (30, 40), dtype=np.uint16)
IMAGE = HIGH.astype("<u2").tobytes() + LOW.astype("<u2").tobytes()
CHUNK = 1000


def start(frame: str = "F1", **change: Any) -> Packet:
    obj = {
        "frame": frame,
        "bag": "B1",
        "lane": 1,
        "view": "side",
        "width": 40,
        "height": 30,
        "channels": ["high", "low"],
        "dtype": "uint16",
        "bytes": len(IMAGE),
    } | change
    return Packet(PacketType.FRAME_START, 0, json.dumps(obj).encode())


def data(offset: int, size: int = CHUNK, image: bytes = IMAGE) -> Packet:
    return Packet(
        PacketType.FRAME_DATA, 0, frame_data_payload(offset, image[offset : offset + size])
    )


def end(image: bytes = IMAGE) -> Packet:
    return Packet(PacketType.FRAME_END, 0, hashlib.sha256(image).digest())


def chunks(image: bytes = IMAGE) -> list[Packet]:
    return [data(o, image=image) for o in range(0, len(image), CHUNK)]


def feed(packets: list[Packet], assembler: FrameAssembler | None = None) -> list[AssemblyEvent]:
    assembler = assembler or FrameAssembler()
    return [event for p in packets for event in assembler.feed(p)]


def test_complete_frame_is_assembled_planar_little_endian() -> None:
    (frame,) = feed([start(), *chunks(), end()])
    assert isinstance(frame, AssembledFrame)
    assert (frame.frame, frame.bag, frame.lane, frame.view) == ("F1", "B1", 1, "side")
    assert frame.high.dtype == np.uint16 and frame.high.shape == (30, 40)
    assert np.array_equal(frame.high, HIGH) and frame.low is not None
    assert np.array_equal(frame.low, LOW)
    assert frame.sha256 == hashlib.sha256(IMAGE).hexdigest()
    as_frame = frame.to_frame()
    assert as_frame.shape == (30, 40) and as_frame.meta["scanner_frame"] == "F1"


def test_chunks_in_any_order_complete_the_frame() -> None:
    ordered = chunks()
    shuffled = [ordered[i] for i in np.random.default_rng(1).permutation(len(ordered))]
    (frame,) = feed([start(), *shuffled, end()])
    assert isinstance(frame, AssembledFrame)


def test_single_energy_frame() -> None:
    image = HIGH.tobytes()
    (frame,) = feed([start(channels=["high"], bytes=len(image)), *chunks(image), end(image)])
    assert isinstance(frame, AssembledFrame)
    assert frame.low is None and np.array_equal(frame.high, HIGH)


def _missing(packets: list[Packet]) -> list[Packet]:
    return packets[:3] + packets[4:]


def _overlapping(packets: list[Packet]) -> list[Packet]:
    return [*packets[:3], data(2 * CHUNK + 10), *packets[3:]]


def _duplicated(packets: list[Packet]) -> list[Packet]:
    return [*packets, packets[0]]


def _past_end(packets: list[Packet]) -> list[Packet]:
    return [*packets, data(len(IMAGE) - 1, 2, IMAGE + b"x")]


CASES = [
    (
        "missing chunk",
        lambda p: [start(), *_missing(p), end()],
        "incomplete: received 3800 of 4800 bytes",
    ),
    ("overlap", lambda p: [start(), *_overlapping(p), end()], "overlaps: bytes 2010..3010"),
    ("duplicate chunk", lambda p: [start(), *_duplicated(p), end()], "overlaps"),
    ("out of range", lambda p: [start(), *_past_end(p), end()], "out of range"),
    (
        "offset past end",
        lambda p: [start(), data(len(IMAGE) + 5, 1, bytes(len(IMAGE) + 9)), *p, end()],
        "out of range",
    ),
    ("wrong hash", lambda p: [start(), *p, end(IMAGE + b"!")], "SHA-256 mismatch"),
    (
        "short hash",
        lambda p: [start(), *p, Packet(PacketType.FRAME_END, 0, b"\x01" * 31)],
        "32-byte SHA-256",
    ),
    (
        "short data packet",
        lambda p: [start(), Packet(PacketType.FRAME_DATA, 0, b"\x01"), *p, end()],
        "at least 4 bytes",
    ),
    (
        "too large",
        lambda p: [start(width=16384, height=16384, bytes=16384**2 * 4), *p, end()],
        "frame too large",
    ),
    ("bad field", lambda p: [start(dtype="float32"), *p, end()], "'dtype'"),
    ("truncated stream", lambda p: [start(), *p[:5], start("F2")], "incomplete: a new FRAME_START"),
]


@pytest.mark.parametrize(("name", "make", "reason"), CASES, ids=[c[0] for c in CASES])
def test_damaged_frame_is_rejected_once_with_a_reason(name: str, make: Any, reason: str) -> None:
    events = feed(make(chunks()))
    rejected = [e for e in events if isinstance(e, Rejected)]
    assert [e.frame for e in rejected] == ["F1"]
    assert reason in rejected[0].reason
    assert not any(isinstance(e, AssembledFrame) for e in events)


def test_a_rejected_frame_swallows_its_rest_and_the_next_frame_is_fine() -> None:
    assembler = FrameAssembler()
    events = feed([start(), data(0), data(0), *chunks()[1:], end()], assembler)
    assert [type(e) for e in events] == [Rejected]
    (frame,) = feed([start("F2"), *chunks(), end()], assembler)
    assert isinstance(frame, AssembledFrame) and frame.frame == "F2"
    assert assembler.stats.rejected == 1 and assembler.stats.assembled == 1


def test_a_stream_that_stops_mid_frame_returns_nothing() -> None:
    assembler = FrameAssembler()
    assert feed([start(), *chunks()[:-1]], assembler) == []
    assert assembler.open_frame == "F1"
    assembler.reset()
    assert assembler.open_frame is None


def test_a_second_start_for_the_same_frame_restarts_it() -> None:
    events = feed([start(), *chunks()[:4], start(), *chunks(), end()])
    assert [type(e) for e in events] == [AssembledFrame]


def test_frame_end_without_start_is_an_orphan() -> None:
    assembler = FrameAssembler()
    events = feed([*chunks(), end()], assembler)
    assert [type(e) for e in events] == [Orphan]
    assert assembler.stats.orphan_data == len(chunks())


def test_unreadable_start_is_answered_once_at_its_end() -> None:
    bad = Packet(PacketType.FRAME_START, 0, b"{broken")
    events = feed([bad, *chunks(), end()])
    assert len(events) == 1 and isinstance(events[0], Orphan)
    assert "unusable FRAME_START" in events[0].reason


def test_other_packet_types_are_not_the_assemblers() -> None:
    assert FrameAssembler().feed(Packet(PacketType.HEARTBEAT, 0, heartbeat_payload())) == []


def test_frame_start_payload_round_trip_through_the_assembler() -> None:
    fs = FrameStart("F9", "B9", 3, "top", 40, 30, ("high", "low"), "uint16", len(IMAGE))
    packet = Packet(PacketType.FRAME_START, 0, fs.to_payload())
    (frame,) = feed([packet, *chunks(), end()])
    assert isinstance(frame, AssembledFrame) and frame.start == fs
