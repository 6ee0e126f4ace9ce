"""A logged frame's pixels read back for the image views, checked once per frame.

The image log keeps each channel as a PNG, normally stored uncompressed with no row
filters (edge.store.images, level 0): such a file is read by edge.ingest.png_quick in a
few milliseconds, against ~7 ms per channel through OpenCV; any other PNG (compressed,
filtered, interlaced, an older log) goes through cv2.imdecode as the store itself reads
it. The pixels are checked against the stored SHA-256 exactly as Store.load_image does,
and the checked frames are kept in a small LRU, so the high, low and material views of
one bag verify its planes once, not once per view.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.errors import BadInputError
from edge.frames import Frame
from edge.ingest.png_quick import decode_png
from edge.store import ImageMissingError, Store


def decode_plane(data: bytes, name: str) -> npt.NDArray[Any] | None:
    """A channel's PNG bytes as pixels (RGB order for `rgb`), or None when they are not a
    PNG at all: the fast path when it applies, else OpenCV, which reads any PNG."""
    found = decode_png(data)  # None when damaged or unusual: libpng has the last word
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
