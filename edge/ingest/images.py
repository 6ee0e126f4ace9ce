"""Image files to Frames: 8-bit PNG/JPEG pseudo-colour, 16-bit dual-energy PNG pairs and
two-page TIFFs, DICOS DX. The kind is read from the content, not the name."""

from __future__ import annotations

import codecs
import contextlib
import io
import logging
import struct
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from edge.errors import BadInputError, EdgeError, UnsupportedImageError
from edge.frames import Frame
from edge.ingest import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    captured_decoder_warnings,
    check_pixel_count,
    one_line,
    read_limited,
)
from edge.ingest.dicos import decode_dicos_dx

logger = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")
DICOM_MARKER_OFFSET = 128
DICOS_SUFFIXES = frozenset({".dcs", ".dcm", ".dicom"})

HIGH_SUFFIX = "_high"
LOW_SUFFIX = "_low"

# PNG colour types (IHDR byte 25): 0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA.
_PNG_GREY = 0
_PNG_COLOUR_NAMES = {0: "greyscale", 2: "RGB", 3: "palette", 4: "greyscale+alpha", 6: "RGBA"}
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def load_image(
    path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Frame:
    """One image file as a Frame, its kind told by content.

    8-bit PNG/JPEG -> rgb (H, W, 3) uint8; 16-bit greyscale PNG -> high (H, W) uint16, with
    low from its `<stem>_low.png` partner (either file of the pair may be named, or the
    bare stem); 16-bit TIFF -> high = page 0, low = page 1; DICOS DX -> see load_dicos_dx.
    Raises UnsupportedImageError or BadInputError naming the file.
    """
    path = Path(path)
    if not path.exists():
        high_path, low_path = dual_energy_paths(path)
        if high_path.is_file() and low_path.is_file():
            return _load_png_pair(high_path, low_path, path, max_bytes, max_pixels)
    data = read_limited(path, max_bytes)
    kind = sniff_format(data, path.suffix)
    if kind == "dicos":
        return decode_dicos_dx(data, path, max_pixels=max_pixels)
    if kind == "png":
        return _load_png(path, data, max_bytes, max_pixels)
    if kind == "jpeg":
        rgb = _decode_rgb(path, data, "JPEG", max_pixels)
        return Frame(rgb=rgb, meta={"source_path": str(path), "format": "jpeg"})
    if kind == "tiff":
        return _load_tiff(path, data, max_pixels)
    raise UnsupportedImageError(f"{path}: unsupported file type ({_describe_unknown(data)})")


def sniff_format(data: bytes, suffix: str = "") -> str | None:
    """The kind of a file from its first bytes: png, jpeg, tiff, dicos, or None if unknown.

    The name is consulted only for DICOS files written without the DICM preamble.
    """
    if data[DICOM_MARKER_OFFSET : DICOM_MARKER_OFFSET + 4] == b"DICM":
        return "dicos"
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(JPEG_SIGNATURE):
        return "jpeg"
    if data.startswith(TIFF_SIGNATURES):
        return "tiff"
    if suffix.lower() in DICOS_SUFFIXES:
        return "dicos"
    return None


def dual_energy_paths(stem_path: Path) -> tuple[Path, Path]:
    """(`<stem>_high.png`, `<stem>_low.png`) for a stem path; a trailing .png is dropped."""
    stem_path = Path(stem_path)
    name = stem_path.name
    if name.lower().endswith(".png"):
        name = name[: -len(".png")]
    return (
        stem_path.with_name(f"{name}{HIGH_SUFFIX}.png"),
        stem_path.with_name(f"{name}{LOW_SUFFIX}.png"),
    )


def save_dual_energy_png(
    stem_path: Path, high: npt.NDArray[np.uint16], low: npt.NDArray[np.uint16]
) -> tuple[Path, Path]:
    """Write (H, W) uint16 channels as 16-bit greyscale `<stem>_high.png`, `<stem>_low.png`."""
    high_path, low_path = dual_energy_paths(stem_path)
    for label, channel in (("high", high), ("low", low)):
        if channel.ndim != 2 or channel.dtype != np.uint16:
            raise BadInputError(
                f"{stem_path}: expected {label} channel (H, W) uint16, "
                f"got {channel.shape} {channel.dtype}"
            )
    if high.shape != low.shape:
        raise BadInputError(
            f"{stem_path}: expected high and low channels of one shape, "
            f"got {high.shape} and {low.shape}"
        )
    if not high_path.parent.is_dir():
        raise BadInputError(f"{stem_path}: directory {high_path.parent} does not exist")
    for out_path, channel in ((high_path, high), (low_path, low)):
        if not cv2.imwrite(str(out_path), np.ascontiguousarray(channel)):
            raise EdgeError(f"{out_path}: could not write 16-bit PNG")
    return high_path, low_path


def _load_png(path: Path, data: bytes, max_bytes: int, max_pixels: int) -> Frame:
    width, height, bit_depth, colour_type = _png_header(path, data)
    check_pixel_count(path, height, width, max_pixels)
    if bit_depth != 16:
        rgb = _decode_rgb(path, data, "PNG", max_pixels)
        return Frame(rgb=rgb, meta={"source_path": str(path), "format": "png"})
    if colour_type != _PNG_GREY:
        colour = _PNG_COLOUR_NAMES.get(colour_type, f"colour type {colour_type}")
        raise UnsupportedImageError(
            f"{path}: 16-bit {colour} PNG is not supported; "
            "expected 8-bit colour or 16-bit greyscale"
        )
    stem = path.stem
    if stem.endswith(HIGH_SUFFIX):
        low_path = path.with_name(f"{stem[: -len(HIGH_SUFFIX)]}{LOW_SUFFIX}{path.suffix}")
        if low_path.is_file():
            return _load_png_pair(path, low_path, path, max_bytes, max_pixels, high_data=data)
    elif stem.endswith(LOW_SUFFIX):
        high_path = path.with_name(f"{stem[: -len(LOW_SUFFIX)]}{HIGH_SUFFIX}{path.suffix}")
        if not high_path.is_file():
            raise UnsupportedImageError(
                f"{path}: low-energy image without its high-energy partner {high_path.name}"
            )
        return _load_png_pair(high_path, path, path, max_bytes, max_pixels)
    high = _decode_grey16(path, data, "PNG", max_pixels)
    return Frame(high=high, meta={"source_path": str(path), "format": "png", "energy": "single"})


def _load_png_pair(
    high_path: Path,
    low_path: Path,
    source: Path,
    max_bytes: int,
    max_pixels: int,
    high_data: bytes | None = None,
) -> Frame:
    channels = []
    for channel_path, data in ((high_path, high_data), (low_path, None)):
        if data is None:
            data = read_limited(channel_path, max_bytes)
        if sniff_format(data) != "png":
            raise UnsupportedImageError(f"{channel_path}: expected a 16-bit greyscale PNG")
        width, height, bit_depth, colour_type = _png_header(channel_path, data)
        if bit_depth != 16 or colour_type != _PNG_GREY:
            raise UnsupportedImageError(
                f"{channel_path}: expected a 16-bit greyscale PNG, got {bit_depth}-bit "
                f"{_PNG_COLOUR_NAMES.get(colour_type, f'colour type {colour_type}')}"
            )
        check_pixel_count(channel_path, height, width, max_pixels)
        channels.append(_decode_grey16(channel_path, data, "PNG", max_pixels))
    high, low = channels
    if high.shape != low.shape:
        raise UnsupportedImageError(
            f"{low_path}: expected the shape of {high_path.name} {high.shape}, got {low.shape}"
        )
    meta = {
        "source_path": str(source),
        "format": "png",
        "energy": "dual",
        "high_path": str(high_path),
        "low_path": str(low_path),
    }
    return Frame(high=high, low=low, meta=meta)


def _load_tiff(path: Path, data: bytes, max_pixels: int) -> Frame:
    pages: list[npt.NDArray[np.uint16]] = []
    with _decoding(path, "TIFF"), Image.open(io.BytesIO(data), formats=["TIFF"]) as image:
        page_count = int(getattr(image, "n_frames", 1))
        if page_count not in (1, 2):
            raise UnsupportedImageError(
                f"{path}: expected a TIFF of 1 page or 2 (high and low energy), got {page_count}"
            )
        for page in range(page_count):
            image.seek(page)
            if image.mode not in _SIXTEEN_BIT_MODES:
                raise UnsupportedImageError(
                    f"{path}: TIFF page {page} is mode {image.mode}; "
                    "expected 16-bit unsigned greyscale"
                )
            check_pixel_count(path, image.height, image.width, max_pixels)
            pages.append(np.asarray(image).astype(np.uint16))
    if len(pages) == 2 and pages[0].shape != pages[1].shape:
        raise UnsupportedImageError(
            f"{path}: expected TIFF pages of one shape, got {pages[0].shape} and {pages[1].shape}"
        )
    low = pages[1] if len(pages) == 2 else None
    energy = "dual" if low is not None else "single"
    meta = {"source_path": str(path), "format": "tiff", "energy": energy}
    return Frame(high=pages[0], low=low, meta=meta)


def _decode_rgb(path: Path, data: bytes, fmt: str, max_pixels: int) -> npt.NDArray[np.uint8]:
    """(H, W, 3) uint8 from an 8-bit image; grey is replicated, alpha dropped."""
    with _decoding(path, fmt), Image.open(io.BytesIO(data), formats=[fmt]) as image:
        check_pixel_count(path, image.height, image.width, max_pixels)
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb)


def _decode_grey16(path: Path, data: bytes, fmt: str, max_pixels: int) -> npt.NDArray[np.uint16]:
    with _decoding(path, fmt), Image.open(io.BytesIO(data), formats=[fmt]) as image:
        check_pixel_count(path, image.height, image.width, max_pixels)
        if image.mode not in _SIXTEEN_BIT_MODES:
            raise UnsupportedImageError(f"{path}: expected 16-bit greyscale, got mode {image.mode}")
        return np.asarray(image).astype(np.uint16)


@contextlib.contextmanager
def _decoding(path: Path, fmt: str) -> Iterator[None]:
    """Turn a decoder library's exceptions into one-line errors naming the file."""
    with captured_decoder_warnings() as caught:
        try:
            yield
        except EdgeError:
            raise
        except UnidentifiedImageError as exc:
            # Pillow's message names only its in-memory buffer.
            raise UnsupportedImageError(
                f"{path}: truncated or corrupt {fmt} (header not readable)"
            ) from exc
        except Image.DecompressionBombError as exc:
            raise UnsupportedImageError(f"{path}: image too large ({one_line(exc)})") from exc
        except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError, ...
            raise UnsupportedImageError(
                f"{path}: truncated or corrupt {fmt} ({one_line(exc)})"
            ) from exc
    if caught:
        logger.info("%s: %s decoded with warning: %s", path, fmt, one_line(caught[0].message))


def _png_header(path: Path, data: bytes) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from the IHDR chunk, read before decoding."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise UnsupportedImageError(f"{path}: truncated or corrupt PNG (no IHDR header)")
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", data[16:26])
    return width, height, bit_depth, colour_type


def _describe_unknown(data: bytes) -> str:
    head = data[:512]
    if b"\x00" not in head:
        try:
            # Incremental, so a character cut at the 512-byte mark still counts as text.
            codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        except UnicodeDecodeError:
            pass
        else:
            return "a text file, not a PNG, JPEG, TIFF or DICOS image"
    return f"content starting {head[:8].hex()} is not a PNG, JPEG, TIFF or DICOS image"
