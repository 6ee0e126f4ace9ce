"""Scanner link protocol, version 1 (CONTRACT.md section 1): packets and their payloads.

Pure: bytes in, packets and validated payloads out. A packet before encoding is
`version (1) | type (1) | seq (uint16 LE) | payload (N) | crc32 (uint32 LE over [0, 4+N))`,
COBS-encoded and followed by one 0x00. `PacketDecoder` turns any byte stream, garbage
included, into the valid packets it holds and counts what it dropped.
"""

from __future__ import annotations

import enum
import json
import math
import numbers
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from edge.errors import BadInputError
from edge.ingest.cobs import FramingError, cobs_decode, cobs_encode

PROTOCOL_VERSION = 1
HEADER_BYTES = 4
CRC_BYTES = 4
MAX_PACKET_BYTES = 65_544  # decoded: header + payload + CRC
MAX_PAYLOAD_BYTES = MAX_PACKET_BYTES - HEADER_BYTES - CRC_BYTES
DATA_OFFSET_BYTES = 4
MAX_DATA_CHUNK = MAX_PAYLOAD_BYTES - DATA_OFFSET_BYTES  # image bytes in one FRAME_DATA
SHA256_BYTES = 32
MAX_SIDE = 16_384  # pixels, width or height
DEFAULT_MAX_FRAME_BYTES = 256 * 1024 * 1024
MAX_ID_CHARS = 256
CHANNEL_LAYOUTS = (("high", "low"), ("high",))
DELIMITER = b"\x00"


def max_encoded_bytes(max_packet_bytes: int) -> int:
    """Longest COBS encoding (delimiter excluded) of a packet of at most max_packet_bytes."""
    # One code byte per 254 data bytes, one more to start, one for a non-canonical 0x01.
    return max_packet_bytes + max_packet_bytes // 254 + 2


class PacketType(enum.IntEnum):
    FRAME_START = 0x01
    FRAME_DATA = 0x02
    FRAME_END = 0x03
    HEARTBEAT = 0x10
    ERROR = 0x7F
    ACK = 0x81
    RESULT = 0x82


@dataclass(frozen=True)
class Packet:
    """One decoded, CRC-checked packet."""

    type: PacketType
    seq: int
    payload: bytes


class PayloadError(BadInputError):
    """A packet payload that does not follow the contract; `frame` is the scanner's frame id
    when it could still be read, so the frame can be ACKed `rejected`."""

    def __init__(self, message: str, frame: str | None = None) -> None:
        super().__init__(message)
        self.frame = frame


# ---------------------------------------------------------------------------------------
# Packets


def pack_packet(type: int, seq: int, payload: bytes, *, version: int = PROTOCOL_VERSION) -> bytes:
    """The unencoded packet: header, payload, CRC32. No size check (see encode_packet)."""
    head = struct.pack("<BBH", version, type, seq & 0xFFFF) + bytes(payload)
    return head + struct.pack("<I", zlib.crc32(head))


def encode_packet(
    type: int, seq: int, payload: bytes = b"", *, version: int = PROTOCOL_VERSION
) -> bytes:
    """The packet as sent on the wire: COBS(header | payload | crc32) then 0x00."""
    if not 0 <= seq <= 0xFFFF:
        raise BadInputError(f"packet seq: expected 0..65535, got {seq}")
    if not 0 <= type <= 0xFF:
        raise BadInputError(f"packet type: expected 0..255, got {type}")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise BadInputError(
            f"packet payload: expected at most {MAX_PAYLOAD_BYTES} bytes, got {len(payload)}"
        )
    return cobs_encode(pack_packet(type, seq, payload, version=version)) + DELIMITER


class SeqCounter:
    """A sender's uint16 sequence counter, wrapping at 65536. Not thread-safe."""

    def __init__(self, start: int = 0) -> None:
        self._next = start & 0xFFFF

    def next(self) -> int:
        seq = self._next
        self._next = (seq + 1) & 0xFFFF
        return seq


@dataclass
class DecoderStats:
    """What a PacketDecoder accepted and dropped. `garbage_bytes` counts every received
    byte (delimiters excluded) that was not part of a valid packet."""

    packets: int = 0
    bad_cobs: int = 0
    bad_crc: int = 0
    bad_version: int = 0
    unknown_type: int = 0
    too_short: int = 0
    oversize: int = 0
    garbage_bytes: int = 0

    @property
    def bad_packets(self) -> int:
        """Dropped packets of every kind."""
        return (
            self.bad_cobs
            + self.bad_crc
            + self.bad_version
            + self.unknown_type
            + self.too_short
            + self.oversize
        )

    def as_dict(self) -> dict[str, int]:
        out = {f.name: int(getattr(self, f.name)) for f in fields(self)}
        out["bad_packets"] = self.bad_packets
        return out


class PacketDecoder:
    """Byte stream -> valid packets. Resynchronises at every 0x00; holds at most one
    encoded packet's worth of bytes, so a stream with no delimiter cannot grow it."""

    def __init__(self, *, max_packet_bytes: int = MAX_PACKET_BYTES) -> None:
        self.max_packet_bytes = max_packet_bytes
        self.max_encoded = max_encoded_bytes(max_packet_bytes)
        self.stats = DecoderStats()
        self._buf = bytearray()
        self._discarding = False  # an over-long run is being skipped up to the next 0x00

    def feed(self, data: bytes) -> list[Packet]:
        """Consume `data` (any split of the stream); the packets it completed, in order."""
        packets: list[Packet] = []
        view = memoryview(data)
        start, size = 0, len(data)
        while start < size:
            end = data.find(DELIMITER, start)
            if end < 0:
                self._append(view[start:])
                break
            self._append(view[start:end])
            packet = self._finish()
            if packet is not None:
                packets.append(packet)
            start = end + 1
        return packets

    def reset(self) -> None:
        """Forget a partly received packet (after a port error); stats are kept."""
        self._buf.clear()
        self._discarding = False

    def _append(self, chunk: memoryview) -> None:
        if self._discarding:
            self.stats.garbage_bytes += len(chunk)
            return
        if len(self._buf) + len(chunk) > self.max_encoded:
            self.stats.oversize += 1
            self.stats.garbage_bytes += len(self._buf) + len(chunk)
            self._buf.clear()
            self._discarding = True
            return
        self._buf += chunk

    def _finish(self) -> Packet | None:
        if self._discarding:
            self._discarding = False
            return None
        if not self._buf:
            return None  # back-to-back delimiters: nothing was lost
        encoded = bytes(self._buf)
        self._buf.clear()
        packet = self._parse(encoded)
        if packet is None:
            self.stats.garbage_bytes += len(encoded)
        else:
            self.stats.packets += 1
        return packet

    def _parse(self, encoded: bytes) -> Packet | None:
        try:
            raw = cobs_decode(encoded)
        except FramingError:
            self.stats.bad_cobs += 1
            return None
        if len(raw) > self.max_packet_bytes:
            self.stats.oversize += 1
            return None
        if len(raw) < HEADER_BYTES + CRC_BYTES:
            self.stats.too_short += 1
            return None
        (crc,) = struct.unpack_from("<I", raw, len(raw) - CRC_BYTES)
        if zlib.crc32(memoryview(raw)[:-CRC_BYTES]) != crc:
            self.stats.bad_crc += 1
            return None
        version, type_, seq = struct.unpack_from("<BBH", raw)
        if version != PROTOCOL_VERSION:
            self.stats.bad_version += 1
            return None
        try:
            packet_type = PacketType(type_)
        except ValueError:
            self.stats.unknown_type += 1
            return None
        return Packet(packet_type, seq, raw[HEADER_BYTES:-CRC_BYTES])


# ---------------------------------------------------------------------------------------
# Payloads


def _json_payload(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _json_object(payload: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(bytes(payload).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"{what}: expected UTF-8 JSON, got undecodable bytes ({exc})") from None
    if not isinstance(obj, dict):
        raise PayloadError(f"{what}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _field(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in obj:
        raise PayloadError(f"{what}: missing field '{key}'", _frame_of(obj))
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int subclass in Python; JSON true is never a valid count, id or score.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise PayloadError(
            f"{what}: field '{key}' expected {names}, got {_show(value)}", _frame_of(obj)
        )
    return value


def _show(value: Any) -> str:
    """A value for an error message: as JSON, short."""
    return json.dumps(value, default=repr)[:60]


def _frame_of(obj: Mapping[str, Any]) -> str | None:
    frame = obj.get("frame")
    if isinstance(frame, str) and 0 < len(frame) <= MAX_ID_CHARS:
        return frame
    return None


def _frame_id(obj: Mapping[str, Any], what: str) -> str:
    frame = _field(obj, "frame", str, what)
    if not 0 < len(frame) <= MAX_ID_CHARS:
        raise PayloadError(
            f"{what}: field 'frame' expected 1..{MAX_ID_CHARS} characters, got {len(frame)}"
        )
    return str(frame)


@dataclass(frozen=True)
class FrameStart:
    """FRAME_START: what the image that follows is. `extra` keeps fields the contract does
    not name (ignored, so a newer scanner still talks to this appliance)."""

    frame: str
    bag: str
    lane: int
    view: str
    width: int
    height: int
    channels: tuple[str, ...]
    dtype: str = "uint16"
    nbytes: int = 0  # the contract's `bytes`: total image bytes
    extra: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def expected_bytes(width: int, height: int, channels: int) -> int:
        """Image bytes for `channels` uint16 planes of width x height pixels."""
        return width * height * 2 * channels

    def to_payload(self) -> bytes:
        return _json_payload(
            {
                **self.extra,
                "frame": self.frame,
                "bag": self.bag,
                "lane": self.lane,
                "view": self.view,
                "width": self.width,
                "height": self.height,
                "channels": list(self.channels),
                "dtype": self.dtype,
                "bytes": self.nbytes,
            }
        )


_START_FIELDS = ("frame", "bag", "lane", "view", "width", "height", "channels", "dtype", "bytes")


def parse_frame_start(
    payload: bytes, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
) -> FrameStart:
    """A validated FRAME_START; PayloadError (with the frame id when readable) otherwise."""
    what = "FRAME_START"
    obj = _json_object(payload, what)
    frame = _frame_id(obj, what)
    what = f"FRAME_START {frame}"
    bag = _field(obj, "bag", str, what)
    lane = _field(obj, "lane", int, what)
    view = _field(obj, "view", str, what)
    width = _field(obj, "width", int, what)
    height = _field(obj, "height", int, what)
    for key, value in (("width", width), ("height", height)):
        if not 1 <= value <= MAX_SIDE:
            raise PayloadError(f"{what}: field '{key}' expected 1..{MAX_SIDE}, got {value}", frame)
    channels = _field(obj, "channels", list, what)
    if tuple(channels) not in CHANNEL_LAYOUTS:
        raise PayloadError(
            f'{what}: field \'channels\' expected ["high","low"] or ["high"], '
            f"got {_show(channels)}",
            frame,
        )
    dtype = _field(obj, "dtype", str, what)
    if dtype != "uint16":
        raise PayloadError(f"{what}: field 'dtype' expected \"uint16\", got {dtype!r}", frame)
    size = _field(obj, "bytes", int, what)
    expected = FrameStart.expected_bytes(width, height, len(channels))
    if size != expected:
        raise PayloadError(
            f"{what}: field 'bytes' expected {expected} (width x height x 2 x {len(channels)} "
            f"channels), got {size}",
            frame,
        )
    if size > max_frame_bytes:
        raise PayloadError(
            f"{what}: frame too large ({size} bytes, limit {max_frame_bytes})", frame
        )
    extra = {k: v for k, v in obj.items() if k not in _START_FIELDS}
    return FrameStart(frame, bag, lane, view, width, height, tuple(channels), dtype, size, extra)


def frame_data_payload(offset: int, chunk: bytes) -> bytes:
    """FRAME_DATA: uint32 LE byte offset, then image bytes."""
    if not 0 <= offset <= 0xFFFF_FFFF:
        raise BadInputError(f"FRAME_DATA offset: expected 0..2**32-1, got {offset}")
    return struct.pack("<I", offset) + bytes(chunk)


def parse_frame_data(payload: bytes) -> tuple[int, bytes]:
    """(byte offset, image bytes) of a FRAME_DATA payload."""
    if len(payload) < DATA_OFFSET_BYTES:
        raise PayloadError(
            f"FRAME_DATA: expected at least {DATA_OFFSET_BYTES} bytes, got {len(payload)}"
        )
    (offset,) = struct.unpack_from("<I", payload)
    return offset, payload[DATA_OFFSET_BYTES:]


def parse_frame_end(payload: bytes) -> bytes:
    """The 32-byte SHA-256 digest of a FRAME_END payload."""
    if len(payload) != SHA256_BYTES:
        raise PayloadError(
            f"FRAME_END: expected a {SHA256_BYTES}-byte SHA-256, got {len(payload)} bytes"
        )
    return bytes(payload)


def utc_now_iso() -> str:
    """Now as ISO 8601 UTC with milliseconds, e.g. 2024-05-01T12:00:00.123Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Heartbeat:
    time: str
    status: str | None = None


def heartbeat_payload(status: str | None = None, *, time: str | None = None) -> bytes:
    obj: dict[str, Any] = {"time": time or utc_now_iso()}
    if status is not None:
        obj["status"] = status
    return _json_payload(obj)


def parse_heartbeat(payload: bytes) -> Heartbeat:
    obj = _json_object(payload, "HEARTBEAT")
    time = _field(obj, "time", str, "HEARTBEAT")
    try:
        datetime.fromisoformat(time)
    except ValueError:
        raise PayloadError(
            f"HEARTBEAT: field 'time' expected ISO 8601, got {time[:60]!r}"
        ) from None
    status = obj.get("status")
    if status is not None and not isinstance(status, str):
        raise PayloadError(f"HEARTBEAT: field 'status' expected str, got {_show(status)}")
    return Heartbeat(time, status)


@dataclass(frozen=True)
class Ack:
    """ACK: `id` is the appliance's frame id (stored), `reason` says why (rejected)."""

    frame: str
    status: str
    id: str | int | None = None
    reason: str | None = None


def ack_stored_payload(frame: str, id: str | int) -> bytes:
    return _json_payload({"frame": frame, "status": "stored", "id": id})


def ack_rejected_payload(frame: str, reason: str) -> bytes:
    return _json_payload({"frame": frame, "status": "rejected", "reason": reason})


def parse_ack(payload: bytes) -> Ack:
    obj = _json_object(payload, "ACK")
    frame = _frame_id(obj, "ACK")
    status = _field(obj, "status", str, "ACK")
    if status == "stored":
        return Ack(frame, status, id=_field(obj, "id", (str, int), "ACK"))
    if status == "rejected":
        return Ack(frame, status, reason=_field(obj, "reason", str, "ACK"))
    raise PayloadError(f'ACK: field \'status\' expected "stored" or "rejected", got {status!r}')


_RESULT_FIELDS = frozenset({"frame", "bag", "id", "alarm", "reason", "model", "detections"})
_DETECTION_FIELDS = frozenset({"class", "score", "box"})


def result_payload(result: Mapping[str, Any]) -> bytes:
    """RESULT from a dict with exactly the contract's fields; BadInputError naming the field."""
    return _json_payload(validate_result(result))


def parse_result(payload: bytes) -> dict[str, Any]:
    return validate_result(_json_object(payload, "RESULT"))


def validate_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """The RESULT fields, checked: frame, bag, id, alarm (bool or None), reason (exactly when
    alarm is None), model "name@version", detections [{class, score, box [x1,y1,x2,y2]}]."""
    what = "RESULT"
    unknown = sorted(set(result) - _RESULT_FIELDS)
    if unknown:
        raise PayloadError(f"{what}: unknown field(s) {', '.join(unknown)}")
    frame = _frame_id(result, what)
    what = f"RESULT {frame}"
    out: dict[str, Any] = {
        "frame": frame,
        "bag": _field(result, "bag", str, what),
        "id": _field(result, "id", (str, int), what),
    }
    if "alarm" not in result:
        raise PayloadError(f"{what}: missing field 'alarm'", frame)
    alarm = result["alarm"]
    if alarm is not None and not isinstance(alarm, bool):
        raise PayloadError(f"{what}: field 'alarm' expected true, false or null, got {alarm!r}")
    out["alarm"] = alarm
    reason = result.get("reason")
    if alarm is None:
        if not isinstance(reason, str) or not reason:
            raise PayloadError(f"{what}: field 'reason' expected a text when alarm is null", frame)
        out["reason"] = reason
    elif reason is not None:
        raise PayloadError(f"{what}: field 'reason' expected only when alarm is null", frame)
    model = _field(result, "model", str, what)
    name, at, version = model.partition("@")
    if not (name and at and version):
        raise PayloadError(f"{what}: field 'model' expected \"name@version\", got {model!r}")
    out["model"] = model
    detections = _field(result, "detections", list, what)
    out["detections"] = [
        _validate_detection(d, f"{what} detection {i}") for i, d in enumerate(detections)
    ]
    return out


def _validate_detection(det: Any, what: str) -> dict[str, Any]:
    if not isinstance(det, Mapping):
        raise PayloadError(f"{what}: expected an object, got {type(det).__name__}")
    if set(det) != _DETECTION_FIELDS:
        raise PayloadError(
            f"{what}: expected fields class, score, box, got {', '.join(sorted(det))}"
        )
    name = _field(det, "class", str, what)
    # numbers.Real: numpy scalars from a detector are numbers too.
    score = _field(det, "score", numbers.Real, what)
    box = _field(det, "box", (list, tuple), what)
    coords = [v for v in box if isinstance(v, numbers.Real) and not isinstance(v, bool)]
    if len(box) != 4 or len(coords) != 4 or not all(math.isfinite(v) for v in coords):
        raise PayloadError(
            f"{what}: field 'box' expected [x1, y1, x2, y2] numbers, got {_show(box)}"
        )
    if not math.isfinite(score):
        raise PayloadError(f"{what}: field 'score' expected a finite number, got {_show(score)}")
    return {"class": name, "score": float(score), "box": [float(v) for v in coords]}


@dataclass(frozen=True)
class LinkErrorReport:
    """ERROR: `code` is a short machine-readable string (an int from a scanner is kept)."""

    code: str | int
    message: str


def error_payload(code: str, message: str) -> bytes:
    return _json_payload({"code": code, "message": message})


def parse_error(payload: bytes) -> LinkErrorReport:
    obj = _json_object(payload, "ERROR")
    return LinkErrorReport(
        _field(obj, "code", (str, int), "ERROR"), _field(obj, "message", str, "ERROR")
    )
