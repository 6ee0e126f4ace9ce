"""Link protocol packets and payloads: the exact wire layout, the decoder's resynchronisation
and counters on damaged streams, and payload validation."""

from __future__ import annotations

import json
import os
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.errors import BadInputError
from edge.ingest.cobs import cobs_decode, cobs_encode
from edge.ingest.link_protocol import (
    MAX_PACKET_BYTES,
    MAX_PAYLOAD_BYTES,
    FrameStart,
    Packet,
    PacketDecoder,
    PacketType,
    PayloadError,
    SeqCounter,
    ack_rejected_payload,
    ack_stored_payload,
    encode_packet,
    error_payload,
    frame_data_payload,
    heartbeat_payload,
    max_encoded_bytes,
    pack_packet,
    parse_ack,
    parse_error,
    parse_frame_data,
    parse_frame_end,
    parse_frame_start,
    parse_heartbeat,
    parse_result,
    result_payload,
)


def test_wire_layout_is_the_contracts() -> None:
    wire = encode_packet(PacketType.HEARTBEAT, 0x1234, b'{"time":"x"}')
    assert wire.endswith(b"\x00") and wire.count(b"\x00") == 1
    raw = cobs_decode(wire[:-1])
    assert raw[:4] == bytes([1, 0x10, 0x34, 0x12])  # version, type, seq little-endian
    assert raw[4:-4] == b'{"time":"x"}'
    assert raw[-4:] == struct.pack("<I", zlib.crc32(raw[:-4]))


def test_packet_types_have_the_contracts_codes() -> None:
    assert {t.name: int(t) for t in PacketType} == {
        "FRAME_START": 0x01,
        "FRAME_DATA": 0x02,
        "FRAME_END": 0x03,
        "HEARTBEAT": 0x10,
        "ERROR": 0x7F,
        "ACK": 0x81,
        "RESULT": 0x82,
    }


def test_round_trip_of_every_type_and_the_largest_payload() -> None:
    decoder = PacketDecoder()
    sent = [Packet(t, i * 7, bytes([i]) * i) for i, t in enumerate(PacketType)]
    sent.append(Packet(PacketType.FRAME_DATA, 65535, os.urandom(MAX_PAYLOAD_BYTES)))
    stream = b"".join(encode_packet(p.type, p.seq, p.payload) for p in sent)
    assert decoder.feed(stream) == sent
    assert decoder.stats.packets == len(sent) and decoder.stats.bad_packets == 0


def test_seq_counter_wraps() -> None:
    counter = SeqCounter(65534)
    assert [counter.next() for _ in range(3)] == [65534, 65535, 0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seq": 65536}, "seq"),
        ({"seq": -1}, "seq"),
        ({"payload": bytes(MAX_PAYLOAD_BYTES + 1)}, "at most 65536 bytes"),
    ],
)
def test_encode_refuses_what_the_contract_forbids(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"type": PacketType.FRAME_DATA, "seq": 0, "payload": b""} | kwargs
    with pytest.raises(BadInputError, match=message):
        encode_packet(**args)


def _corrupt_crc(wire: bytes) -> bytes:
    raw = bytearray(cobs_decode(wire[:-1]))
    raw[5] ^= 0x01
    return cobs_encode(bytes(raw)) + b"\x00"


GOOD = encode_packet(PacketType.HEARTBEAT, 1, b'{"time":"2024-01-01T00:00:00Z"}')


@pytest.mark.parametrize(
    ("bad", "counter"),
    [
        (_corrupt_crc(GOOD), "bad_crc"),
        (encode_packet(PacketType.HEARTBEAT, 1, b"{}", version=2), "bad_version"),
        (cobs_encode(pack_packet(0x55, 1, b"")) + b"\x00", "unknown_type"),
        (cobs_encode(b"\x01\x10\x00") + b"\x00", "too_short"),
        (b"\x05\x11\x22\x00", "bad_cobs"),
        (
            cobs_encode(pack_packet(PacketType.FRAME_DATA, 1, bytes(MAX_PAYLOAD_BYTES + 1)))
            + b"\x00",
            "oversize",
        ),
        (b"\x07" * (max_encoded_bytes(MAX_PACKET_BYTES) + 10) + b"\x00", "oversize"),
    ],
)
def test_bad_packets_are_dropped_counted_and_the_next_one_decoded(bad: bytes, counter: str) -> None:
    decoder = PacketDecoder()
    packets = decoder.feed(GOOD + bad + GOOD)
    assert [p.seq for p in packets] == [1, 1]
    stats = decoder.stats.as_dict()
    assert stats[counter] == 1 and stats["bad_packets"] == 1
    assert stats["garbage_bytes"] == len(bad) - 1  # the delimiter itself is not garbage


def test_decoded_oversize_is_caught_even_under_the_encoded_bound() -> None:
    # All 0xFF code blocks: encoded length stays under the bound, decoded goes over.
    raw = pack_packet(PacketType.FRAME_DATA, 1, b"\x01" * (MAX_PAYLOAD_BYTES + 100))
    decoder = PacketDecoder()
    assert decoder.feed(cobs_encode(raw) + b"\x00") == []
    assert decoder.stats.oversize == 1


def test_a_stream_without_delimiters_keeps_the_buffer_bounded() -> None:
    decoder = PacketDecoder(max_packet_bytes=1000)
    for _ in range(50):
        decoder.feed(b"\x01" * 4096)
    assert len(decoder._buf) <= decoder.max_encoded  # never more than one packet's worth
    assert decoder.stats.oversize == 1  # one over-long run, counted once
    assert decoder.feed(b"\x00" + GOOD)[0].seq == 1


def test_empty_frames_between_delimiters_are_not_errors() -> None:
    decoder = PacketDecoder()
    assert len(decoder.feed(b"\x00\x00" + GOOD + b"\x00")) == 1
    assert decoder.stats.bad_packets == 0 and decoder.stats.garbage_bytes == 0


def _packets() -> st.SearchStrategy[list[Packet]]:
    packet = st.builds(
        Packet,
        st.sampled_from(list(PacketType)),
        st.integers(0, 65535),
        st.binary(max_size=600),
    )
    return st.lists(packet, min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(
    packets=_packets(),
    garbage=st.lists(st.binary(max_size=300), min_size=9, max_size=9),
    cuts=st.lists(st.integers(0, 10_000), max_size=20),
)
def test_garbage_between_packets_and_any_chunking_give_the_same_packets(
    packets: list[Packet], garbage: list[bytes], cuts: list[int]
) -> None:
    # Garbage ends at a delimiter, as line noise before a sender's next packet must for the
    # packet to survive (otherwise the noise merges into it and it is dropped: see below).
    stream = b"".join(
        g + b"\x00" + encode_packet(p.type, p.seq, p.payload)
        for g, p in zip(garbage, packets, strict=False)
    )
    edges = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *edges], [*edges, len(stream)], strict=True)]
    decoder = PacketDecoder()
    received = [p for chunk in chunks for p in decoder.feed(chunk)]
    assert received == packets
    assert decoder.stats.packets == len(packets)


def test_noise_merged_into_a_packet_loses_only_that_packet() -> None:
    decoder = PacketDecoder()
    second = encode_packet(PacketType.HEARTBEAT, 2, b"{}")
    packets = decoder.feed(GOOD + b"\x13\x37" + second + GOOD)
    assert [p.seq for p in packets] == [1, 1]
    assert decoder.stats.bad_packets == 1


def test_one_megabyte_of_random_bytes_between_packets() -> None:
    rng_bytes = os.urandom(1 << 20)
    big = encode_packet(PacketType.FRAME_DATA, 9, os.urandom(MAX_PAYLOAD_BYTES))
    decoder = PacketDecoder()
    packets = decoder.feed(GOOD + rng_bytes + b"\x00" + big + rng_bytes + b"\x00" + GOOD)
    assert [p.seq for p in packets] == [1, 9, 1]
    # Every random byte is garbage except the zeros, which act as delimiters.
    assert decoder.stats.garbage_bytes == 2 * (len(rng_bytes) - rng_bytes.count(0))
    assert decoder.stats.bad_packets > 0


# ---------------------------------------------------------------------------------------
# Payloads

START = {
    "frame": "F1",
    "bag": "B1",
    "lane": 2,
    "view": "top",
    "width": 3,
    "height": 2,
    "channels": ["high", "low"],
    "dtype": "uint16",
    "bytes": 24,
}


def test_frame_start_round_trip_keeps_unknown_fields() -> None:
    start = parse_frame_start(json.dumps(START | {"belt_speed": 0.3}).encode())
    assert (start.frame, start.width, start.height, start.channels, start.nbytes) == (
        "F1",
        3,
        2,
        ("high", "low"),
        24,
    )
    assert start.extra == {"belt_speed": 0.3}
    assert parse_frame_start(start.to_payload()) == start
    single = parse_frame_start(json.dumps(START | {"channels": ["high"], "bytes": 12}).encode())
    assert single.channels == ("high",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"frame": ""}, "'frame' expected 1..256"),
        ({"frame": 7}, "'frame' expected str"),
        ({"lane": True}, "'lane' expected int"),
        ({"lane": "2"}, "'lane' expected int"),
        ({"width": 0, "bytes": 0}, "'width' expected 1..16384"),
        ({"height": 16385}, "'height' expected 1..16384"),
        ({"channels": ["low", "high"]}, "'channels' expected"),
        ({"channels": "high"}, "'channels' expected list"),
        ({"dtype": "uint8"}, "'dtype' expected \"uint16\""),
        ({"bytes": 23}, "'bytes' expected 24"),
        ({"view": None}, "'view' expected str"),
    ],
)
def test_frame_start_errors_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(PayloadError, match=message) as info:
        parse_frame_start(json.dumps(START | change).encode())
    assert info.value.frame == (START["frame"] if "frame" not in change else None)


@pytest.mark.parametrize("missing", sorted(START))
def test_frame_start_missing_field(missing: str) -> None:
    obj = {k: v for k, v in START.items() if k != missing}
    with pytest.raises(PayloadError, match=f"missing field '{missing}'"):
        parse_frame_start(json.dumps(obj).encode())


@pytest.mark.parametrize("payload", [b"\xff\xfe", b"[1, 2]", b"{not json"])
def test_frame_start_that_is_not_a_json_object(payload: bytes) -> None:
    with pytest.raises(PayloadError, match="FRAME_START: expected"):
        parse_frame_start(payload)


def test_frame_start_over_the_size_limit() -> None:
    big = START | {"width": 16384, "height": 16384, "bytes": 16384 * 16384 * 4}
    with pytest.raises(PayloadError, match="frame too large"):
        parse_frame_start(json.dumps(big).encode())
    with pytest.raises(PayloadError, match="frame too large"):
        parse_frame_start(json.dumps(START).encode(), max_frame_bytes=23)


def test_frame_data_and_end_payloads() -> None:
    assert parse_frame_data(frame_data_payload(70_000, b"ab")) == (70_000, b"ab")
    assert frame_data_payload(1, b"")[:4] == b"\x01\x00\x00\x00"
    with pytest.raises(PayloadError, match="at least 4 bytes"):
        parse_frame_data(b"\x01")
    assert parse_frame_end(bytes(32)) == bytes(32)
    with pytest.raises(PayloadError, match="32-byte SHA-256"):
        parse_frame_end(bytes(31))
    assert FrameStart.expected_bytes(1000, 700, 2) == 2_800_000


def test_heartbeat_ack_error_payloads() -> None:
    beat = parse_heartbeat(heartbeat_payload("ok"))
    assert beat.status == "ok" and beat.time.endswith("Z")
    assert parse_heartbeat(b'{"time": "2024-05-01T12:00:00+00:00"}').status is None
    with pytest.raises(PayloadError, match="ISO 8601"):
        parse_heartbeat(b'{"time": "yesterday"}')
    assert json.loads(ack_stored_payload("F1", "a-17")) == {
        "frame": "F1",
        "status": "stored",
        "id": "a-17",
    }
    assert parse_ack(ack_stored_payload("F1", 17)).id == 17
    assert parse_ack(ack_rejected_payload("F1", "bad hash")).reason == "bad hash"
    with pytest.raises(PayloadError, match="'reason'"):
        parse_ack(b'{"frame": "F1", "status": "rejected"}')
    with pytest.raises(PayloadError, match="'status' expected"):
        parse_ack(b'{"frame": "F1", "status": "maybe"}')
    error = parse_error(error_payload("no_frame", "lost"))
    assert (error.code, error.message) == ("no_frame", "lost")


RESULT = {
    "frame": "F1",
    "bag": "B1",
    "id": "a-17",
    "alarm": True,
    "model": "demo-xray-det@1.0.0",
    "detections": [{"class": "gun", "score": 0.9, "box": [1, 2, 30.5, 40]}],
}


def test_result_payload_has_exactly_the_contracts_fields() -> None:
    sent = json.loads(result_payload(RESULT))
    assert sent == RESULT | {
        "detections": [{"class": "gun", "score": 0.9, "box": [1.0, 2.0, 30.5, 40.0]}]
    }
    assert parse_result(result_payload(RESULT)) == sent
    not_screened = RESULT | {"alarm": None, "reason": "detector timed out", "detections": []}
    assert json.loads(result_payload(not_screened))["reason"] == "detector timed out"
    assert "reason" not in json.loads(result_payload(RESULT | {"reason": None}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": 1}, "unknown field"),
        ({"alarm": "yes"}, "'alarm' expected true, false or null"),
        ({"alarm": None}, "'reason' expected a text when alarm is null"),
        ({"reason": "why"}, "'reason' expected only when alarm is null"),
        ({"model": "demo"}, "name@version"),
        ({"id": True}, "'id' expected str or int"),
        ({"detections": {}}, "'detections' expected list"),
        ({"detections": [{"class": "gun", "score": 0.5}]}, "expected fields class, score, box"),
        ({"detections": [{"class": "gun", "score": "high", "box": [0, 0, 1, 1]}]}, "'score'"),
        ({"detections": [{"class": "gun", "score": float("nan"), "box": [0, 0, 1, 1]}]}, "finite"),
        ({"detections": [{"class": "gun", "score": 0.5, "box": [0, 0, 1]}]}, "'box'"),
    ],
)
def test_result_errors_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        result_payload(RESULT | change)


def test_result_accepts_numpy_numbers_from_a_detector() -> None:
    det = {
        "class": "gun",
        "score": np.float32(0.5),
        "box": list(np.array([1, 2, 3, 4], np.float32)),
    }
    sent = json.loads(result_payload(RESULT | {"detections": [det]}))
    assert sent["detections"] == [{"class": "gun", "score": 0.5, "box": [1.0, 2.0, 3.0, 4.0]}]
