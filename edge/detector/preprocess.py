"""Frame pixels to the graph's NCHW float32 input, and model-input boxes back to frame pixels.

Geometry follows ultralytics' LetterBox: scale by r = min(new_h / h, new_w / w), resize to
(round(w * r), round(h * r)) with bilinear interpolation, pad the rest with a constant,
centred, the odd pixel going to the bottom / right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.detector.manifest import InputSpec
from edge.errors import BadInputError
from edge.frames import AIR_LEVEL

UINT16_FULL_SCALE = 65535.0

# Pixels as OpenCV takes them: (H, W) or (H, W, C), uint8 RGB or uint16 dual-energy here.
ImageArray = npt.NDArray[np.integer[Any] | np.floating[Any]]


@dataclass(frozen=True)
class LetterboxInfo:
    """Where the frame sits in the model input: input_px = frame_px * scale + pad.

    `scale_x`, `scale_y`: input pixels per frame pixel (both r when letterboxing, independent
    when stretching); `pad_x`, `pad_y`: left and top padding in input pixels; `resized_w`,
    `resized_h`: the frame's size inside the input, pixels.
    """

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    resized_w: int
    resized_h: int


def letterbox_geometry(frame_w: int, frame_h: int, new_w: int, new_h: int) -> LetterboxInfo:
    """Placement of a frame_w x frame_h frame letterboxed into new_w x new_h (pixels)."""
    r = min(new_h / frame_h, new_w / frame_w)
    # Python's round (half to even) as ultralytics uses it, so the pixels match exactly; at
    # least one pixel, so that a sliver of a frame does not crash the resize.
    resized_w, resized_h = max(1, round(frame_w * r)), max(1, round(frame_h * r))
    dw, dh = (new_w - resized_w) / 2, (new_h - resized_h) / 2
    # Boxes map with r itself, not resized/original: ultralytics scales training labels by r,
    # so a trained model's outputs follow r (the two differ by under half an input pixel).
    return LetterboxInfo(
        scale_x=r,
        scale_y=r,
        pad_x=round(dw - 0.1),
        pad_y=round(dh - 0.1),
        resized_w=resized_w,
        resized_h=resized_h,
    )


def stretch_geometry(frame_w: int, frame_h: int, new_w: int, new_h: int) -> LetterboxInfo:
    """Placement of a frame resized to fill new_w x new_h, aspect ratio not kept."""
    return LetterboxInfo(new_w / frame_w, new_h / frame_h, 0, 0, new_w, new_h)


def _resize(image: ImageArray, info: LetterboxInfo) -> ImageArray:
    if image.shape[1] == info.resized_w and image.shape[0] == info.resized_h:
        return image
    out: ImageArray = cv2.resize(
        image, (info.resized_w, info.resized_h), interpolation=cv2.INTER_LINEAR
    )
    return out


def letterbox(
    image: ImageArray, new_w: int, new_h: int, pad_value: float
) -> tuple[ImageArray, LetterboxInfo]:
    """(H, W[, C]) image letterboxed to (new_h, new_w[, C]), same dtype, padded with pad_value."""
    h, w = image.shape[:2]
    info = letterbox_geometry(w, h, new_w, new_h)
    resized = _resize(image, info)
    bottom = new_h - info.resized_h - info.pad_y
    right = new_w - info.resized_w - info.pad_x
    channels = 1 if image.ndim == 2 else image.shape[2]
    padded: ImageArray = cv2.copyMakeBorder(
        resized,
        info.pad_y,
        bottom,
        info.pad_x,
        right,
        cv2.BORDER_CONSTANT,
        value=(pad_value,) * channels,
    )
    if padded.ndim < image.ndim:  # OpenCV drops a trailing single channel
        padded = padded[..., None]
    return padded, info


def stretch(image: ImageArray, new_w: int, new_h: int) -> tuple[ImageArray, LetterboxInfo]:
    """(H, W[, C]) image resized to (new_h, new_w[, C]) without keeping the aspect ratio."""
    h, w = image.shape[:2]
    info = stretch_geometry(w, h, new_w, new_h)
    return _resize(image, info), info


def unletterbox_boxes(
    boxes: npt.NDArray[np.float32], info: LetterboxInfo, frame_w: int, frame_h: int
) -> npt.NDArray[np.float32]:
    """(N, 4) xyxy boxes in model-input pixels to frame pixels, clipped to [0, w] x [0, h]."""
    out = np.empty((boxes.shape[0], 4), np.float32)
    out[:, 0::2] = (boxes[:, 0::2] - info.pad_x) / info.scale_x
    out[:, 1::2] = (boxes[:, 1::2] - info.pad_y) / info.scale_y
    np.clip(out[:, 0::2], 0.0, frame_w, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0.0, frame_h, out=out[:, 1::2])
    return out


class Preprocessor:
    """Frames to the model's (1, C, H, W) float32 input, reusing preallocated buffers.

    Each input value is gain[c] * pixel + offset[c], with gain and offset folded from the
    manifest: pixel / 65535 for 16-bit planes, then * scale, then (x - mean) / std. Not
    thread-safe: the returned tensor is overwritten by the next call, unless `fresh`: then
    every call returns a new tensor (only its border padded), which the caller keeps.
    """

    def __init__(self, spec: InputSpec, *, fresh: bool = False) -> None:
        self._spec = spec
        self._fresh = fresh
        channels = spec.channels
        base = 1.0 if spec.representation == "pseudocolor" else 1.0 / UINT16_FULL_SCALE
        scale = spec.scale if spec.scale is not None else 1.0
        mean = np.asarray(spec.mean if spec.mean is not None else [0.0] * channels, np.float64)
        std = np.asarray(spec.std if spec.std is not None else [1.0] * channels, np.float64)
        self._gain = (base * scale / std).astype(np.float32).reshape(channels, 1, 1)
        self._offset = (-mean / std).astype(np.float32).reshape(channels, 1, 1)
        self._has_offset = bool(np.any(self._offset))
        # Padding is air in the dual-energy planes: what an empty tunnel would read.
        raw_pad = float(spec.pad_value) if spec.representation == "pseudocolor" else AIR_LEVEL
        self._pad = self._gain * np.float32(raw_pad) + self._offset
        self._tensor = np.empty((1, channels, spec.height, spec.width), np.float32)
        self._tensor[0] = self._pad
        self._frame_size: tuple[int, int] | None = None
        self._info = LetterboxInfo(1.0, 1.0, 0, 0, spec.width, spec.height)
        self._planes: ImageArray = np.empty((channels, 0, 0), np.uint8)  # sized per frame

    @property
    def fresh(self) -> bool:
        """Whether every call returns a new tensor (else one buffer, overwritten)."""
        return self._fresh

    @property
    def tensor(self) -> npt.NDArray[np.float32]:
        """The (1, C, H, W) float32 input buffer; initially every pixel is padding."""
        return self._tensor

    def from_rgb(self, rgb: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.float32], LetterboxInfo]:
        """(H, W, 3) uint8 RGB to the (1, 3, H, W) float32 input and its placement."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise BadInputError(f"image: expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
        self._expect("pseudocolor")
        info = self._place(rgb.shape[1], rgb.shape[0], np.uint8)
        resized = _resize(np.ascontiguousarray(rgb), info)
        # One strided pass to planar uint8, then one contiguous multiply into the float input.
        np.copyto(self._planes, resized.transpose(2, 0, 1))
        self._write(self._planes)
        return self._tensor, info

    def from_planes(
        self, planes: Sequence[npt.NDArray[np.uint16]]
    ) -> tuple[npt.NDArray[np.float32], LetterboxInfo]:
        """(high, low) (H, W) uint16 planes to the (1, 2, H, W) float32 input and placement."""
        self._expect("dual_energy")
        if (
            len(planes) != 2
            or any(p.dtype != np.uint16 or p.ndim != 2 for p in planes)
            or planes[0].shape != planes[1].shape
        ):
            raise BadInputError(
                "planes: expected high and low (H, W) uint16, got "
                f"{[(p.shape, str(p.dtype)) for p in planes]}"
            )
        h, w = planes[0].shape
        info = self._place(w, h, np.uint16)
        for plane, dst in zip(planes, self._planes, strict=True):
            if plane.shape != (info.resized_h, info.resized_w):
                plane = np.ascontiguousarray(plane)
                cv2.resize(plane, (info.resized_w, info.resized_h), dst, 0, 0, cv2.INTER_LINEAR)
            else:
                np.copyto(dst, plane)
        self._write(self._planes)
        return self._tensor, info

    def _expect(self, representation: str) -> None:
        if self._spec.representation != representation:
            raise BadInputError(
                f"model input is {self._spec.representation}, cannot take {representation} data"
            )

    def _place(self, frame_w: int, frame_h: int, dtype: type[np.generic]) -> LetterboxInfo:
        """Placement for this frame size; re-pads the buffers only when the size changes
        (when `fresh`, a new tensor every call)."""
        if frame_w < 1 or frame_h < 1:
            raise BadInputError(f"image: expected a non-empty image, got {frame_w}x{frame_h}")
        if self._frame_size != (frame_w, frame_h):
            spec = self._spec
            geometry = letterbox_geometry if spec.letterbox else stretch_geometry
            info = geometry(frame_w, frame_h, spec.width, spec.height)
            self._planes = np.empty((spec.channels, info.resized_h, info.resized_w), dtype)
            self._frame_size, self._info = (frame_w, frame_h), info
            if not self._fresh:
                self._tensor[0] = self._pad
        if self._fresh:
            self._tensor = self._new_tensor()
        return self._info

    def _new_tensor(self) -> npt.NDArray[np.float32]:
        """A new input tensor with its border (only) padded: half the work of padding all
        of it and copying the result out."""
        info, spec = self._info, self._spec
        tensor = np.empty((1, spec.channels, spec.height, spec.width), np.float32)
        bottom, right = info.pad_y + info.resized_h, info.pad_x + info.resized_w
        for rows, cols in (
            (slice(0, info.pad_y), slice(None)),
            (slice(bottom, None), slice(None)),
            (slice(info.pad_y, bottom), slice(0, info.pad_x)),
            (slice(info.pad_y, bottom), slice(right, None)),
        ):
            tensor[0, :, rows, cols] = self._pad
        return tensor

    def _write(self, planes: ImageArray) -> None:
        info = self._info
        region = self._tensor[
            0, :, info.pad_y : info.pad_y + info.resized_h, info.pad_x : info.pad_x + info.resized_w
        ]
        np.multiply(planes, self._gain, out=region)
        if self._has_offset:
            np.add(region, self._offset, out=region)
