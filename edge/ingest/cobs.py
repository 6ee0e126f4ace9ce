"""Consistent Overhead Byte Stuffing (Cheshire and Baker, 1999): bytes without any 0x00.

The serial link (CONTRACT.md section 1) COBS-encodes every packet and ends it with one 0x00,
so a receiver that lost its place resynchronises at the next 0x00. The encoder writes the
canonical form (no trailing 0x01 after a final run of 254 bytes); the decoder accepts both.
Whole zero-free runs are copied by slicing, so a 64 KiB packet costs a few hundred steps.
"""

from __future__ import annotations

from edge.errors import BadInputError

_MAX_RUN = 254  # data bytes one code byte can announce (code 0xFF: 254 bytes, no zero)


class FramingError(BadInputError):
    """Bytes that are not a valid COBS encoding."""


def cobs_encode(data: bytes) -> bytes:
    """The COBS encoding of `data`: no 0x00 in it, at most len(data) // 254 + 1 bytes longer."""
    out = bytearray()
    segments = bytes(data).split(b"\x00")
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        pos, size = 0, len(segment)
        while size - pos >= _MAX_RUN:
            out.append(_MAX_RUN + 1)
            out += segment[pos : pos + _MAX_RUN]
            pos += _MAX_RUN
        if index == last and size and pos == size:
            break  # a final full run needs no closing code
        out.append(size - pos + 1)
        out += segment[pos:]
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """The bytes `data` encodes; FramingError if it holds a 0x00 or a code runs past its end."""
    data = bytes(data)
    if not data:
        raise FramingError("COBS: expected at least one code byte, got an empty encoding")
    zero = data.find(b"\x00")
    if zero >= 0:
        raise FramingError(f"COBS: expected no 0x00 inside an encoding, got one at offset {zero}")
    out = bytearray()
    pos, size = 0, len(data)
    while pos < size:
        code = data[pos]
        end = pos + code
        if end > size:
            raise FramingError(
                f"COBS: code {code} at offset {pos} points past the end ({size} bytes)"
            )
        out += data[pos + 1 : end]
        pos = end
        if code != _MAX_RUN + 1 and pos < size:
            out.append(0)
    return bytes(out)
