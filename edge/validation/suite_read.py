"""Suite images read once: the bytes read (size-limited), hash-checked against suite.json,
and decoded from those same bytes.

A test reads every image of a suite while the model runs on the previous ones, on the same
cores, so what reading costs slows the inference beside it. Reading the file once (not once
to hash and again to decode) and decoding the suite's usual formats (8-bit RGB PNG, 16-bit
greyscale PNG pairs) with edge.ingest.png_quick where the file is in the layout `edge simulate suite`
writes, else with OpenCV, which decodes straight into one array where Pillow copies it twice
more, cuts that cost to a third. The checks stay: every file's SHA-256, the size and pixel
limits, the PNG header (bit depth and colour type) before decoding; anything else (JPEG,
TIFF, palette PNG, a file OpenCV will not decode) goes to edge.ingest.images.load_image,
which says what is wrong with it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge.frames import Frame
from edge.ingest import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, check_pixel_count, read_limited
from edge.ingest.images import load_image
from edge.ingest.png_quick import decode_png, png_header
from edge.validation.suite import Suite, SuiteError, SuiteImage

PNG_GREY, PNG_RGB = 0, 2  # IHDR colour types


def read_verified(path: Path, suite: Suite) -> bytes:
    """The file's bytes, once their SHA-256 matches suite.json's record of it."""
    rel = path.relative_to(suite.root).as_posix()
    expected = suite.files.get(rel)
    data = read_limited(path, DEFAULT_MAX_BYTES)
    if expected is None or hashlib.sha256(data).hexdigest() != expected:
        raise SuiteError(
            f"{path}: changed since the suite was made (SHA-256 differs from suite.json); "
            "the suite cannot vouch for this run"
        )
    return data


def _png(path: Path, data: bytes, depth: int, colour: int) -> npt.NDArray[np.generic] | None:
    """The decoded pixels when `data` is a PNG of that bit depth and colour type that
    edge.ingest.png_quick (the layouts suites are written in) or else OpenCV decodes to the size its
    header gives; else None."""
    header = png_header(data)
    if header is None or header[2:] != (depth, colour):
        return None
    width, height = header[:2]
    check_pixel_count(path, height, width, DEFAULT_MAX_PIXELS)
    quick = decode_png(data)
    if quick is not None:
        return quick
    flags = cv2.IMREAD_UNCHANGED if colour == PNG_GREY else cv2.IMREAD_COLOR
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if pixels is None or pixels.shape[:2] != (height, width):
        return None
    if colour == PNG_GREY:
        return pixels if pixels.dtype == np.uint16 and pixels.ndim == 2 else None
    if pixels.dtype != np.uint8 or pixels.ndim != 3:
        return None
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)


def _rgb(path: Path, suite: Suite) -> Frame:
    rgb = _png(path, read_verified(path, suite), 8, PNG_RGB)
    if rgb is None:
        return load_image(path)
    return Frame(rgb=np.asarray(rgb, np.uint8), meta={"source_path": str(path), "format": "png"})


def _pair(high_path: Path, low_path: Path, suite: Suite) -> Frame:
    high = _png(high_path, read_verified(high_path, suite), 16, PNG_GREY)
    low = _png(low_path, read_verified(low_path, suite), 16, PNG_GREY)
    if high is None or low is None or high.shape != low.shape:
        return load_image(high_path)  # says what is wrong with the pair
    meta = {
        "source_path": str(high_path),
        "format": "png",
        "energy": "dual",
        "high_path": str(high_path),
        "low_path": str(low_path),
    }
    return Frame(high=np.asarray(high, np.uint16), low=np.asarray(low, np.uint16), meta=meta)


def load_suite_image(image: SuiteImage, suite: Suite, *, channels: bool) -> Frame:
    """The image as a Frame, its files checked against the suite's hashes. `channels`:
    the 16-bit pair when the record names one (for dual-energy models and for checks that
    edit pixels), else the `file_name` file (pseudo-colour: what operators see)."""
    if channels and image.channels is not None:
        high, low = image.channels
        return _pair(high, low, suite)  # the suite checked the pair is <stem>_high/_low.png
    return _rgb(image.file, suite)
