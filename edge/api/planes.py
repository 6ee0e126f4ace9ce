"""A logged frame's pixels read back for the image views, checked once per frame.

The image log keeps each channel as a PNG, normally stored uncompressed with no row
filters (edge.store.images, level 0): such a file is read here with zlib and numpy in a
few milliseconds, against ~7 ms per channel through OpenCV; any other PNG (compressed,
filtered, interlaced, an older log) goes through cv2.imdecode as the store itself reads
it. The pixels are checked against the stored SHA-256 exactly as Store.load_image does,
and the checked frames are kept in a small LRU, so the high, low and material views of
one bag verify its planes once, not once per view.
"""

from __future__ import annotations

import hashlib
import struct
import threading
import zlib
from collections import OrderedDict
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.errors import BadInputError
from edge.frames import Frame
from edge.store import ImageMissingError, Store

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PIXELS = 64 << 20  # far above any scanner frame; bounds what a damaged header can ask
_COLOUR_CHANNELS = {0: 1, 2: 3}  # PNG colour type -> samples per pixel (grey, RGB)


def fast_png(data: bytes) -> npt.NDArray[Any] | None:
    """The pixels of a non-interlaced 8/16-bit grey or RGB PNG whose rows all use filter
    type None, as (H, W) or (H, W, 3) uint8/uint16 in native byte order (RGB order); None
    for any other PNG (the caller decodes it the general way). Raises ValueError or
    zlib.error when the file is damaged."""
    if data[:8] != PNG_SIGNATURE:
        return None
    pos, header, idat = 8, None, []
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        tag = data[pos + 4 : pos + 8]
        if pos + 12 + length > len(data):
            raise ValueError("truncated chunk")
        body = memoryview(data)[pos + 8 : pos + 8 + length]
        if tag == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif tag == b"IDAT":
            idat.append(body)
        elif tag == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ValueError("no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if colour not in _COLOUR_CHANNELS or depth not in (8, 16) or interlace != 0:
        return None
    if not 0 < width * height <= MAX_PIXELS:
        raise ValueError(f"{width}x{height} pixels")
    channels = _COLOUR_CHANNELS[colour]
    row_bytes = 1 + width * channels * depth // 8
    expected = row_bytes * height
    inflater = zlib.decompressobj()
    raw = b"".join(inflater.decompress(part, expected + 1) for part in idat)
    if len(raw) != expected or not inflater.eof:
        raise ValueError("image data of the wrong size")
    rows = np.frombuffer(raw, np.uint8).reshape(height, row_bytes)
    if rows[:, 0].any():
        return None  # filtered rows: leave them to libpng
    dtype = np.dtype(">u2") if depth == 16 else np.dtype(np.uint8)
    pixels = rows[:, 1:].view(dtype).astype(dtype.newbyteorder("="))
    shape = (height, width) if channels == 1 else (height, width, channels)
    return pixels.reshape(shape)


def decode_plane(data: bytes, name: str) -> npt.NDArray[Any] | None:
    """A channel's PNG bytes as pixels (RGB order for `rgb`), or None when they are not a
    PNG at all: the fast path when it applies, else OpenCV, which reads any PNG."""
    try:
        found = fast_png(data)
    except (ValueError, zlib.error, struct.error):
        found = None  # damaged or unusual: libpng has the last word
    if found is not None:
        return found
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is not None and name == "rgb":
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    return array


def pixel_digest(frame: Frame) -> str:
    """edge.store.images.pixel_sha256, hashing the arrays in place (no byte copies)."""
    digest = hashlib.sha256()
    for channel in (frame.high, frame.low):
        if channel is not None:
            digest.update(np.ascontiguousarray(channel, dtype="<u2").data)
    if frame.rgb is not None:
        digest.update(np.ascontiguousarray(frame.rgb).data)
    return digest.hexdigest()


def load_planes(store: Store, frame_id: str) -> Frame:
    """Store.load_image, faster: the logged pixels checked against the stored SHA-256,
    meta with the frame's fields. FrameNotFoundError, or ImageMissingError when the files
    are gone or damaged."""
    stored = store.get_frame(frame_id)
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name, relative in zip(stored.channels, stored.image_paths, strict=True):
        try:
            data = (store.data_dir / relative).read_bytes()
        except FileNotFoundError:
            raise ImageMissingError(f"frame {frame_id}: image file {relative} is missing") from None
        array = decode_plane(data, name)
        if array is None:
            raise ImageMissingError(f"frame {frame_id}: image file {relative} is not a PNG")
        arrays[name] = array
    try:
        frame = Frame(arrays.get("high"), arrays.get("low"), arrays.get("rgb"))
    except BadInputError as exc:
        raise ImageMissingError(f"frame {frame_id}: image files are damaged ({exc})") from None
    if pixel_digest(frame) != stored.sha256:
        raise ImageMissingError(
            f"frame {frame_id}: image files do not match their stored SHA-256 (damaged on disk)"
        )
    frame.meta = stored.frame_meta()
    return frame


class PlaneCache:
    """The last few checked frames, by id: one bag's views are asked for together."""

    def __init__(self, store: Store, frames: int = 6) -> None:
        self.store = store
        self.frames = frames
        self._items: OrderedDict[str, Frame] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, frame_id: str) -> Frame:
        with self._lock:
            found = self._items.get(frame_id)
            if found is not None:
                self._items.move_to_end(frame_id)
                return found
        frame = load_planes(self.store, frame_id)
        with self._lock:
            self._items[frame_id] = frame
            while len(self._items) > self.frames:
                self._items.popitem(last=False)
        return frame
