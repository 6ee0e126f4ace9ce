"""The quick PNG decoder: the same pixels as OpenCV for the layouts it takes, None (so the
caller falls back to the general decoders) for every other layout and for damaged files."""

from __future__ import annotations

import struct
import zlib
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from edge.ingest.png_quick import decode_png, png_header

FILTERS = {
    "none": cv2.IMWRITE_PNG_FILTER_NONE,
    "up": cv2.IMWRITE_PNG_FILTER_UP,
    "sub": cv2.IMWRITE_PNG_FILTER_SUB,
    "avg": cv2.IMWRITE_PNG_FILTER_AVG,
    "paeth": cv2.IMWRITE_PNG_FILTER_PAETH,
}


def encode(pixels: npt.NDArray[np.generic], row_filter: str, level: int = 1) -> bytes:
    """`pixels` (RGB or 16-bit grey) as OpenCV writes a PNG with one row filter."""
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_PNG_COMPRESSION, level, cv2.IMWRITE_PNG_FILTER, FILTERS[row_filter]]
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(pixels), params)
    assert ok
    return buffer.tobytes()


def reference(data: bytes) -> npt.NDArray[np.generic]:
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB) if pixels.ndim == 3 else pixels


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def assemble(parts: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(
        struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d)) for k, d in parts
    )
    return b"\x89PNG\r\n\x1a\n" + body


@pytest.mark.parametrize("shape", [(1, 1), (1, 37), (29, 1), (64, 48), (301, 517)])
@pytest.mark.parametrize("row_filter", ["none", "up"])
def test_same_pixels_as_opencv_for_8_and_16_bit_grey_and_rgb(
    shape: tuple[int, int], row_filter: str
) -> None:
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    # Smooth plus noise, so the up filter produces carries and wraps in every byte.
    ramp = np.linspace(0, 1, shape[0] * shape[1]).reshape(shape)
    rgb = (ramp[..., None] * 200 + rng.integers(0, 56, (*shape, 3))).astype(np.uint8)
    grey = (ramp * 60000 + rng.integers(0, 5000, shape)).astype(np.uint16)
    rgb16 = (ramp[..., None] * 60000 + rng.integers(0, 5000, (*shape, 3))).astype(np.uint16)
    for pixels in (rgb, grey, (grey >> 8).astype(np.uint8), rgb16):
        data = encode(pixels, row_filter)
        got = decode_png(data)
        assert got is not None
        assert got.dtype == pixels.dtype and got.shape == pixels.shape
        np.testing.assert_array_equal(got, reference(data))
        np.testing.assert_array_equal(got, pixels)
        assert got.flags.writeable and got.flags.c_contiguous


def test_a_stream_split_over_many_idat_chunks_is_joined() -> None:
    pixels = np.random.default_rng(3).integers(0, 255, (40, 30, 3), dtype=np.uint8)
    parts = chunks(encode(pixels, "none"))
    stream = b"".join(d for k, d in parts if k == b"IDAT")
    split = [(b"IDAT", stream[i : i + 100]) for i in range(0, len(stream), 100)]
    others = [p for p in parts if p[0] != b"IDAT"]
    data = assemble([others[0], (b"tEXt", b"Comment\x00made by a test"), *split, others[-1]])
    got = decode_png(data)
    assert got is not None
    np.testing.assert_array_equal(got, pixels)


@pytest.mark.parametrize("row_filter", ["sub", "avg", "paeth"])
def test_other_row_filters_are_left_to_the_general_decoder(row_filter: str) -> None:
    pixels = np.random.default_rng(4).integers(0, 255, (20, 20, 3), dtype=np.uint8)
    assert decode_png(encode(pixels, row_filter)) is None


def test_mixed_row_filters_and_other_layouts_are_left_to_the_general_decoder() -> None:
    rng = np.random.default_rng(5)
    photo = np.linspace(0, 255, 64 * 64 * 3).reshape(64, 64, 3) + rng.normal(0, 3, (64, 64, 3))
    # Pillow picks a filter per row (adaptive), and writes the other layouts below.
    layouts = [
        Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)),  # mixed filters
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).convert("LA"),  # +alpha
        Image.fromarray(rng.integers(0, 255, (16, 16, 4), dtype=np.uint8)),  # RGBA
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).convert("P"),
    ]
    for image in layouts:
        buffer = BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
        assert png_header(data) is not None
        assert decode_png(data) is None


def test_damaged_files_are_refused_not_misread() -> None:
    pixels = np.random.default_rng(6).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    good = encode(pixels, "none")
    parts = chunks(good)
    idat = next(d for k, d in parts if k == b"IDAT")
    ihdr = parts[0][1]

    def with_idat(stream: bytes) -> bytes:
        return assemble([(k, stream if k == b"IDAT" else d) for k, d in parts])

    def with_ihdr(header: bytes) -> bytes:
        return assemble([(k, header if k == b"IHDR" else d) for k, d in parts])

    flipped = bytearray(idat)
    flipped[len(flipped) // 2] ^= 0xFF
    taller = struct.pack(">II", 40, 31) + ihdr[8:]
    shorter = struct.pack(">II", 40, 29) + ihdr[8:]
    damaged = {
        "truncated in the middle": good[: len(good) // 2],
        "no IEND": assemble(parts[:-1]),
        "no IDAT": assemble([p for p in parts if p[0] != b"IDAT"]),
        "corrupt stream": with_idat(bytes(flipped)),
        "stream cut short": with_idat(idat[:-10]),
        "not a zlib stream": with_idat(b"\x00" * len(idat)),
        "header says taller": with_ihdr(taller),
        "header says shorter": with_ihdr(shorter),
        "zero width": with_ihdr(struct.pack(">II", 0, 30) + ihdr[8:]),
        # 10^10 pixels: refused before anything is allocated (the stream is only 30x40).
        "header asks for too many pixels": with_ihdr(
            struct.pack(">II", 100_000, 100_000) + ihdr[8:]
        ),
        "unknown compression": with_ihdr(ihdr[:10] + b"\x01" + ihdr[11:]),
        "interlaced (Adam7)": with_ihdr(ihdr[:12] + b"\x01"),
        "bad filter byte": with_idat(
            zlib.compress(b"".join(b"\x07" + bytes(120) for _ in range(30)))
        ),
        "chunk longer than the file": good[:33] + struct.pack(">I", 2**31) + good[37:],
        "IHDR of the wrong length": good[:11] + b"\x0e" + good[12:],
        "IDAT chunks apart": assemble(
            [parts[0], (b"IDAT", idat[:50]), (b"tEXt", b"a\x00b"), (b"IDAT", idat[50:]), parts[-1]]
        ),
        # OpenCV turns an image as its EXIF orientation says: left to OpenCV.
        "EXIF orientation": assemble(
            [
                parts[0],
                (
                    b"eXIf",
                    b"MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x02\x00\x00\x00\x00\x00\x00",
                ),
                *parts[1:],
            ]
        ),
        "not a PNG": b"GIF89a" + good[6:],
        "empty": b"",
    }
    for name, data in damaged.items():
        assert decode_png(data) is None, name
    assert decode_png(good) is not None


def test_the_files_edge_simulate_suite_writes_take_the_quick_path(tmp_path: Path) -> None:
    from edge.sim.scene import simulate_bag
    from edge.sim.suite import write_frames

    files = write_frames(tmp_path, [simulate_bag(41_000_000 + k) for k in range(2)], {})
    pngs = [rel for rel in files if rel.endswith(".png")]
    assert len(pngs) == 6  # per frame: pseudo-colour, high and low
    for rel in pngs:
        data = (tmp_path / rel).read_bytes()
        got = decode_png(data)
        assert got is not None, rel
        np.testing.assert_array_equal(got, reference(data))
