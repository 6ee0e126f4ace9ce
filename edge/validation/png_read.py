"""A quick decoder for the PNG layouts suites are written in.

A test decodes every suite image on the cores the model runs on, so decoding is what its
time above inference is mostly made of. `edge simulate suite` writes non-interlaced PNGs
whose rows all use one cheap filter (none for the 8-bit RGB pseudo-colour, up for the 16-bit
greyscale planes). Those are decoded here: the IDAT chunks joined, inflated by libdeflate
(4.5 ms for a 1000x906 RGB image where zlib, inside libpng or Python's module, takes 10-15,
and it lets go of the GIL once per image instead of once per buffer it grows), the rows'
filter undone with numpy. Nothing else is guessed at: another colour type or depth,
interlacing, an EXIF orientation, rows with the sub, average or Paeth filter or with mixed filters, a chunk running
past the end, a stream that does not inflate to exactly the size the header gives or fails
its Adler-32 check: decode_png returns None and the caller falls back to the general
decoders, which say what is wrong. Chunk CRCs are not checked: a suite's files are
SHA-256-checked before they get here, and the stream carries its own checksum.
"""

from __future__ import annotations

import struct

import deflate
import numpy as np
import numpy.typing as npt

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GREY, RGB = 0, 2  # IHDR colour types
NONE, UP = 0, 2  # the row filter types decoded here
LAYOUTS = {(8, RGB): 3, (16, GREY): 2}  # (bit depth, colour type) -> bytes per pixel


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


def decode_png(data: bytes) -> npt.NDArray[np.uint8] | npt.NDArray[np.uint16] | None:
    """(H, W, 3) uint8 RGB or (H, W) uint16 pixels of a PNG in a layout this module
    decodes; None for any other (the caller's general decoder takes those). The caller
    checks the header's size against its pixel limit before calling."""
    header = png_header(data)
    if header is None:
        return None
    width, height, depth, colour = header
    bpp = LAYOUTS.get((depth, colour))
    compression, filter_method, interlace = data[26:29]
    if bpp is None or (compression, filter_method, interlace) != (0, 0, 0):
        return None
    if width == 0 or height == 0:
        return None
    stream = _image_data(data)
    if stream is None:
        return None
    expected = height * (1 + width * bpp)
    try:
        raw = deflate.zlib_decompress(stream, expected)
    except deflate.DeflateError:
        return None
    if len(raw) != expected:
        return None
    rows = np.frombuffer(raw, np.uint8).reshape(height, 1 + width * bpp)
    body = _unfilter(rows)
    if body is None:
        return None
    if colour == RGB:
        return body.reshape(height, width, 3)
    return body.view(">u2").astype(np.uint16)
