"""A quick decoder for the PNG layouts this project writes for itself.

The image log keeps each channel as an unfiltered PNG (edge.store.images, level 0) and
`edge simulate suite` writes non-interlaced PNGs whose rows all use one cheap filter (none
for the 8-bit RGB pseudo-colour, up for the 16-bit greyscale planes); the image views and
`edge test` read those files on the cores the model runs on. They are decoded here: the
IDAT chunks joined, inflated by libdeflate (4.5 ms for a 1000x906 RGB image where zlib,
inside libpng or Python's module, takes 10-15, and it lets go of the GIL once per image
instead of once per buffer it grows), the rows' filter undone with numpy. Nothing else is
guessed at: another colour type or depth, interlacing, an EXIF orientation, rows with the
sub, average or Paeth filter or with mixed filters, more pixels than the limit, a chunk
running past the end, a stream that does not inflate to exactly the size the header gives
or fails its Adler-32 check: decode_png returns None and the caller falls back to the
general decoders, which say what is wrong. Chunk CRCs are not checked: the callers check
the file's or the pixels' SHA-256, and the stream carries its own checksum.
"""

from __future__ import annotations

import struct

import deflate
import numpy as np
import numpy.typing as npt

from edge.ingest import DEFAULT_MAX_PIXELS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GREY, RGB = 0, 2  # IHDR colour types
CHANNELS = {GREY: 1, RGB: 3}
NONE, UP = 0, 2  # the row filter types decoded here


def png_header(data: bytes) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) from a PNG's IHDR, or None when `data`
    does not start as a PNG."""
    if len(data) < 33 or not data.startswith(PNG_SIGNATURE) or data[8:16] != b"\0\0\0\rIHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    return width, height, depth, colour


def _image_data(data: bytes) -> bytes | None:
    """The IDAT chunks' contents joined, or None when a chunk runs past the end, the IDAT
    chunks are not consecutive, IEND never comes, or an eXIf chunk is there (OpenCV turns
    the image as its orientation says; that is left to OpenCV)."""
    parts: list[bytes] = []
    pos = len(PNG_SIGNATURE)
    previous = b""
    while pos + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 8 + length
        if end + 4 > len(data) or kind == b"eXIf":
            return None
        if kind == b"IDAT":
            if parts and previous != b"IDAT":
                return None
            parts.append(data[pos + 8 : end])
        elif kind == b"IEND":
            return b"".join(parts) if parts else None
        previous, pos = kind, end + 4
    return None


def _unfilter(rows: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8] | None:
    """(H, 1 + W * bpp) filtered rows to (H, W * bpp) bytes, when every row uses no filter
    or every row the "up" filter (the first row's "up" is "none": the row above is 0)."""
    filters, body = rows[:, 0], rows[:, 1:]
    if filters[0] not in (NONE, UP):
        return None
    if (filters[1:] == NONE).all():
        return np.array(body)
    if not (filters[1:] == UP).all():
        return None
    # Each byte adds the byte above it (mod 256). Row by row: numpy's cumsum down axis 0
    # takes 9 ms for a 1000x900 16-bit plane, this loop 2.4.
    out = np.empty_like(body)
    np.copyto(out[0], body[0])
    for r in range(1, out.shape[0]):
        np.add(out[r - 1], body[r], out=out[r])
    return out


def decode_png(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS
) -> npt.NDArray[np.uint8] | npt.NDArray[np.uint16] | None:
    """(H, W) or (H, W, 3) uint8 or uint16 pixels (RGB order, native byte order) of an 8- or
    16-bit grey or RGB PNG in a layout this module decodes; None for any other, and for a
    header asking for more than `max_pixels` (the caller's general decoder takes those)."""
    header = png_header(data)
    if header is None:
        return None
    width, height, depth, colour = header
    channels = CHANNELS.get(colour)
    compression, filter_method, interlace = data[26:29]
    if (
        channels is None
        or depth not in (8, 16)
        or (compression, filter_method, interlace) != (0, 0, 0)
    ):
        return None
    if not 0 < width * height <= max_pixels:
        return None
    stream = _image_data(data)
    if stream is None:
        return None
    row_bytes = 1 + width * channels * depth // 8
    expected = height * row_bytes
    try:
        raw = deflate.zlib_decompress(stream, expected)
    except deflate.DeflateError:
        return None
    if len(raw) != expected:
        return None
    body = _unfilter(np.frombuffer(raw, np.uint8).reshape(height, row_bytes))
    if body is None:
        return None
    pixels = body.view(">u2").astype(np.uint16) if depth == 16 else body
    return pixels.reshape((height, width) if channels == 1 else (height, width, channels))
