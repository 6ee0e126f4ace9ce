"""How a frame is drawn for people: pseudo-colour, one energy in grey, the material map,
with or without the detector's boxes, full size or shrunk for thumbnails; and the cache
of the PNGs that carry them (edge.api.png encodes).

All inputs are (H, W) uint16 calibrated channels or an (H, W, 3) uint8 RGB rendering;
boxes are xyxy in frame pixels. Lookup tables keep a 1024x768 view to a few milliseconds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from edge.api.png import by_strips
from edge.errors import BadInputError, EdgeError
from edge.pseudocolor import METAL_MIN_R, OPAQUE_ATTENUATION, ORGANIC_MAX_R, attenuation

View = Literal["pseudo", "high", "low", "material"]
VIEWS: tuple[View, ...] = ("pseudo", "high", "low", "material")

# Attenuation per uint16 value, for np.take (several times faster than fancy indexing).
_ATTENUATION: npt.NDArray[np.float32] = attenuation(np.arange(65536, dtype=np.uint16))
# Grey level per uint16 value: bright where X-rays pass, black where nothing does, as the
# pseudo-colour view's brightness (so the views line up by eye).
_GREY_LUT: npt.NDArray[np.uint8] = (
    np.clip(1.0 - _ATTENUATION / OPAQUE_ATTENUATION, 0, 1) ** 0.8 * 255 + 0.5
).astype(np.uint8)
# material_classes(): 0 background, 1 organic, 2 inorganic, 3 metal, 4 opaque.
_MATERIAL_RGB = np.array(
    [[255, 255, 255], [235, 140, 30], [40, 170, 60], [40, 90, 220], [0, 0, 0]], np.uint8
)
MATERIAL_PALETTE = _MATERIAL_RGB  # material_index() values are indices into it
_BOX_RGB = (255, 45, 85)  # stands out against orange, green and blue
# Thumbnails: the history page and the strip of recent bags ask for these sizes.
MIN_THUMBNAIL, MAX_THUMBNAIL = 16, 4096


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
    1 organic, 2 inorganic, 3 metal, 4 opaque), pixel for pixel, in a fraction of its time:
    the ratio's special cases become class overrides instead of whole-image selects, and
    row strips run on the encoder's threads (numpy releases the GIL for them)."""
    out: npt.NDArray[np.uint8] = by_strips(_material_rows, high, low)
    return out


def _material_rows(
    high: npt.NDArray[np.uint16], low: npt.NDArray[np.uint16]
) -> npt.NDArray[np.uint8]:
    a_high, a_low = np.take(_ATTENUATION, high), np.take(_ATTENUATION, low)
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


def downsample(image: npt.NDArray[np.uint8], max_side: int) -> tuple[npt.NDArray[np.uint8], float]:
    """`image` (grey or RGB) shrunk by area averaging so its longer side is at most
    `max_side`, and the scale applied (1.0: unchanged)."""
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image, 1.0
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    out = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.asarray(out, np.uint8), scale


def thumbnail_side(text: str | None) -> int | None:
    """The `max` parameter of an image: None (full size) or a whole number of pixels in
    [MIN_THUMBNAIL, MAX_THUMBNAIL]; BadInputError (400) otherwise."""
    if text is None:
        return None
    if not (len(text) <= 8 and text.isascii() and text.isdigit()) or not (
        MIN_THUMBNAIL <= int(text) <= MAX_THUMBNAIL
    ):
        raise BadInputError(
            f"max: expected a whole number of pixels from {MIN_THUMBNAIL} to {MAX_THUMBNAIL}, "
            f"got {text[:20]!r}"
        )
    return int(text)


def scaled(detections: Sequence[dict[str, Any]], scale: float) -> list[dict[str, Any]]:
    """The detections with their boxes in the coordinates of an image scaled by `scale`."""
    return [d | {"box": [float(v) * scale for v in d["box"]]} for d in detections]


def draw_boxes(
    image: npt.NDArray[np.uint8], detections: Sequence[dict[str, Any]]
) -> npt.NDArray[np.uint8]:
    """A copy of `image` (grey or RGB) with each detection's box, class and score drawn."""
    canvas: npt.NDArray[np.uint8] = (
        np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2RGB), np.uint8)
        if image.ndim == 2
        else image.copy()
    )
    _draw(canvas, detections, _BOX_RGB, (255, 255, 255), cv2.LINE_AA)
    return canvas


def grey_palette(
    grey: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]] | None:
    """A grey view as indices into a palette of the levels it uses, when it uses at most
    254 (room for the box colours); None when it uses more."""
    used = np.flatnonzero(np.bincount(grey.ravel(), minlength=256))
    if len(used) > 254:
        return None
    lookup = np.zeros(256, np.uint8)
    lookup[used] = np.arange(len(used), dtype=np.uint8)
    levels = used.astype(np.uint8)
    index = np.asarray(cv2.LUT(grey, lookup), np.uint8)
    return index, np.stack([levels, levels, levels], axis=1)


def draw_boxes_indexed(
    index: npt.NDArray[np.uint8],
    palette: npt.NDArray[np.uint8],
    detections: Sequence[dict[str, Any]],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]] | None:
    """The boxes drawn into a copy of a palette image, the box colour and white added to
    its palette: a third of the bytes to encode of drawing on the RGB colours. Labels are
    not anti-aliased (that needs colours in between). None when the palette has no room."""
    count = len(palette)
    if count > 254:
        return None
    canvas = index.copy()
    _draw(canvas, detections, count, count + 1, cv2.LINE_8)
    extra = np.array([_BOX_RGB, (255, 255, 255)], np.uint8)
    return canvas, np.concatenate([palette, extra])


def boxed_view(
    image: npt.NDArray[np.uint8],
    palette: npt.NDArray[np.uint8] | None,
    detections: Sequence[dict[str, Any]],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8] | None]:
    """A view (grey, RGB, or indices into `palette`) with its boxes drawn, and its palette:
    grey and palette views stay palette images when the colours fit (one byte a pixel to
    encode), anything else is drawn on its RGB colours."""
    if image.ndim == 2:
        indexed = (image, palette) if palette is not None else grey_palette(image)
        drawn = draw_boxes_indexed(*indexed, detections) if indexed is not None else None
        if drawn is not None:
            return drawn
    if palette is not None:
        image = palette_rgb(image, palette)
    return draw_boxes(image, detections), None


def palette_rgb(
    index: npt.NDArray[np.uint8], palette: npt.NDArray[np.uint8]
) -> npt.NDArray[np.uint8]:
    """(H, W, 3) RGB of a palette image: one 8-bit lookup per channel (cv2.LUT), about
    twice as fast as numpy's gather of RGB triples."""
    table = np.zeros((256, 3), np.uint8)
    table[: len(palette)] = palette
    planes = [cv2.LUT(index, np.ascontiguousarray(table[:, c])) for c in range(3)]
    return np.asarray(cv2.merge(planes), np.uint8)


def _draw(
    canvas: npt.NDArray[np.uint8],
    detections: Sequence[dict[str, Any]],
    box: tuple[int, int, int] | int,
    text: tuple[int, int, int] | int,
    line: int,
) -> None:
    height, width = canvas.shape[:2]
    thickness = max(2, round(max(height, width) / 400))
    scale = max(0.5, max(height, width) / 1600)
    for det in detections:
        x1, y1, x2, y2 = (round(float(v)) for v in det["box"])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), box, thickness)
        label = f"{det['class']} {float(det['score']):.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = y1 - th - base - 2 if y1 - th - base - 2 >= 0 else y1
        cv2.rectangle(canvas, (x1, top), (x1 + tw + 4, top + th + base + 2), box, -1)
        cv2.putText(
            canvas, label, (x1 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, text, 1, line
        )


PngKey = tuple[str, str, bool, int]


class PngCache:
    """The last few encoded views, by (frame id, view, boxes, max side or 0), up to
    `max_bytes`.

    The page asks for the same bag several times (main view, the strip of recent bags,
    every operator screen), and a frame's pixels and boxes never change under its id.
    """

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[PngKey, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: PngKey) -> bytes | None:
        with self._lock:
            png = self._items.get(key)
            if png is not None:
                self._items.move_to_end(key)
            return png

    def put(self, key: PngKey, png: bytes) -> None:
        if len(png) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes += len(png) - (len(old) if old is not None else 0)
            self._items[key] = png
            while self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)
