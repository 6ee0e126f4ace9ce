"""How a frame is drawn for people: pseudo-colour, one energy in grey, the material map,
with or without the detector's boxes; and the PNG that carries it.

All inputs are (H, W) uint16 calibrated channels or an (H, W, 3) uint8 RGB rendering;
boxes are xyxy in frame pixels. Lookup tables keep a 1024x768 view to a few milliseconds.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from edge.errors import EdgeError
from edge.pseudocolor import METAL_MIN_R, OPAQUE_ATTENUATION, ORGANIC_MAX_R, attenuation

View = Literal["pseudo", "high", "low", "material"]
VIEWS: tuple[View, ...] = ("pseudo", "high", "low", "material")

# Grey level per uint16 value: bright where X-rays pass, black where nothing does, as the
# pseudo-colour view's brightness (so the views line up by eye).
_GREY_LUT: npt.NDArray[np.uint8] = (
    np.clip(1.0 - attenuation(np.arange(65536, dtype=np.uint16)) / OPAQUE_ATTENUATION, 0, 1) ** 0.8
    * 255
    + 0.5
).astype(np.uint8)
# material_classes(): 0 background, 1 organic, 2 inorganic, 3 metal, 4 opaque.
_MATERIAL_RGB = np.array(
    [[255, 255, 255], [235, 140, 30], [40, 170, 60], [40, 90, 220], [0, 0, 0]], np.uint8
)
_BOX_RGB = (255, 45, 85)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"  # stands out against orange, green and blue


class ViewUnavailableError(EdgeError):
    """The frame has no data for that view (8-bit colour image, single energy, not logged)."""

    http_status = 409


def grey_view(channel: npt.NDArray[np.uint16]) -> npt.NDArray[np.uint8]:
    """(H, W) uint8: one energy channel windowed for display."""
    out: npt.NDArray[np.uint8] = np.take(_GREY_LUT, channel)
    return out


def material_index(
    high: npt.NDArray[np.uint16], low: npt.NDArray[np.uint16]
) -> npt.NDArray[np.uint8]:
    """(H, W) uint8, the classes of edge.pseudocolor.material_classes (0 background,
    1 organic, 2 inorganic, 3 metal, 4 opaque), pixel for pixel, in a third of its time:
    the ratio's special cases become class overrides instead of whole-image selects."""
    a_high, a_low = attenuation(high), attenuation(low)
    ratio = a_low / np.maximum(a_high, np.float32(0.02))
    classes = np.ones(high.shape, np.uint8)
    classes += ratio >= np.float32(ORGANIC_MAX_R)
    classes += ratio >= np.float32(METAL_MIN_R)
    classes[a_low >= np.float32(OPAQUE_ATTENUATION - 0.3)] = 3  # low channel at its floor
    classes[a_high < np.float32(0.05)] = 0
    classes[a_high >= np.float32(OPAQUE_ATTENUATION)] = 4
    return classes


def material_view(
    high: npt.NDArray[np.uint16], low: npt.NDArray[np.uint16]
) -> npt.NDArray[np.uint8]:
    """(H, W, 3) uint8 RGB: organic orange, inorganic green, metal blue, opaque black."""
    out: npt.NDArray[np.uint8] = np.take(_MATERIAL_RGB, material_index(high, low), axis=0)
    return out


def draw_boxes(
    image: npt.NDArray[np.uint8], detections: Sequence[dict[str, Any]]
) -> npt.NDArray[np.uint8]:
    """A copy of `image` (grey or RGB) with each detection's box, class and score drawn."""
    canvas = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image.copy()
    height, width = canvas.shape[:2]
    thickness = max(2, round(max(height, width) / 400))
    scale = max(0.5, max(height, width) / 1600)
    for det in detections:
        x1, y1, x2, y2 = (round(float(v)) for v in det["box"])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), _BOX_RGB, thickness)
        label = f"{det['class']} {float(det['score']):.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = y1 - th - base - 2 if y1 - th - base - 2 >= 0 else y1
        cv2.rectangle(canvas, (x1, top), (x1 + tw + 4, top + th + base + 2), _BOX_RGB, -1)
        cv2.putText(
            canvas,
            label,
            (x1 + 2, top + th + 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return canvas


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def encode_png(image: npt.NDArray[np.uint8]) -> bytes:
    """PNG bytes of an (H, W) grey or (H, W, 3) RGB uint8 image.

    Written here rather than by cv2.imencode: no row filters and zlib level 1 take a
    third of OpenCV's time for a 1024x768 view (~20 ms against ~60 ms on two cores), and
    the files come out smaller, since these views have large flat areas.
    """
    if (
        image.dtype != np.uint8
        or image.ndim not in (2, 3)
        or image.ndim == 3
        and image.shape[2] != 3
    ):
        raise EdgeError(f"PNG: expected (H, W) or (H, W, 3) uint8, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else 3
    raw = np.zeros((height, width * channels + 1), np.uint8)  # column 0: filter type None
    raw[:, 1:] = image.reshape(height, width * channels)
    header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
    return b"".join(
        (
            _PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(raw.data, 1)),
            _chunk(b"IEND", b""),
        )
    )


class PngCache:
    """The last few encoded views, by (frame id, view, boxes), up to `max_bytes`.

    The page asks for the same bag several times (main view, the strip of recent bags,
    every operator screen), and a frame's pixels and boxes never change under its id.
    """

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str, bool], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, bool]) -> bytes | None:
        with self._lock:
            png = self._items.get(key)
            if png is not None:
                self._items.move_to_end(key)
            return png

    def put(self, key: tuple[str, str, bool], png: bytes) -> None:
        if len(png) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes += len(png) - (len(old) if old is not None else 0)
            self._items[key] = png
            while self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)
