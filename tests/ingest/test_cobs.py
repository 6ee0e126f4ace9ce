"""COBS: the published examples, round trips of any bytes, and encodings refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.errors import BadInputError
from edge.ingest.cobs import FramingError, cobs_decode, cobs_encode

RUN_1_254 = bytes(range(1, 255))

# Cheshire and Baker's encoding, as tabulated in the COBS literature.
EXAMPLES = [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (RUN_1_254, b"\xff" + RUN_1_254),
    (b"\x00" + RUN_1_254, b"\x01\xff" + RUN_1_254),
    (RUN_1_254 + b"\xff", b"\xff" + RUN_1_254 + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


@pytest.mark.parametrize(("data", "encoded"), EXAMPLES)
def test_published_examples(data: bytes, encoded: bytes) -> None:
    assert cobs_encode(data) == encoded
    assert cobs_decode(encoded) == data


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=2000)
    | st.lists(
        st.sampled_from([b"\x00", b"\x01" * 253, b"\x02" * 254, b"\x03" * 255]), max_size=8
    ).map(b"".join)
)
def test_round_trip_has_no_zero_and_bounded_overhead(data: bytes) -> None:
    encoded = cobs_encode(data)
    assert b"\x00" not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(encoded) == data


def test_non_canonical_trailing_code_is_accepted() -> None:
    assert cobs_decode(b"\xff" + RUN_1_254 + b"\x01") == RUN_1_254


def test_large_packet_round_trip() -> None:
    data = bytes(range(256)) * 257  # 65,792 bytes, a zero every 256
    assert cobs_decode(cobs_encode(data)) == data


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        (b"", "empty encoding"),
        (b"\x03\x11\x00\x22", "no 0x00 inside"),
        (b"\x05\x11\x22", "past the end"),
        (b"\x02\x11\x04\x22", "past the end"),
        (b"\xff" + bytes(range(1, 100)), "past the end"),
    ],
)
def test_bad_encodings_are_refused(encoded: bytes, message: str) -> None:
    with pytest.raises(FramingError, match=message) as info:
        cobs_decode(encoded)
    assert isinstance(info.value, BadInputError)
