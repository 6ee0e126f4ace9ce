"""Image files to Frames: round trips of every supported kind, and every way a file fails."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from edge.errors import BadInputError, EdgeError, UnsupportedImageError
from edge.ingest.images import (
    PNG_SIGNATURE,
    dual_energy_paths,
    load_image,
    save_dual_energy_png,
    sniff_format,
)

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)
GREY = RNG.integers(0, 256, (24, 32), dtype=np.uint8)
RGBA = RNG.integers(0, 256, (24, 32, 4), dtype=np.uint8)
HIGH = RNG.integers(0, 65536, (24, 32), dtype=np.uint16)
LOW = RNG.integers(0, 65536, (24, 32), dtype=np.uint16)


def png_bytes(array: np.ndarray) -> bytes:
    """PNG via OpenCV, which keeps 16 bits; colour arrays are given RGB(A), stored as such."""
    if array.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if array.shape[2] == 4 else cv2.COLOR_RGB2BGR
        array = cv2.cvtColor(array, code)
    ok, encoded = cv2.imencode(".png", array)
    assert ok
    return encoded.tobytes()


def jpeg_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG", quality=95)
    return out.getvalue()


def smooth_rgb() -> np.ndarray:
    """A gradient JPEG compresses almost exactly, so a round trip can be checked closely."""
    rows, columns = np.mgrid[0:48, 0:64]
    return np.stack([rows * 5, columns * 4, (rows + columns) * 2], axis=2).astype(np.uint8)


def tiff_bytes(tmp_path: Path, pages: list[np.ndarray]) -> bytes:
    out = tmp_path / "pages-src.tiff"
    assert cv2.imwritemulti(str(out), pages)
    return out.read_bytes()


def assert_refused(caught: pytest.ExceptionInfo[BadInputError], path: Path) -> str:
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    return message


# --- 8-bit pseudo-colour ----------------------------------------------------------------

# file name, bytes, expected rgb
RGB_CASES = [
    ("rgb.png", png_bytes(RGB), RGB),
    ("grey.png", png_bytes(GREY), np.repeat(GREY[:, :, None], 3, axis=2)),
    ("rgba.png", png_bytes(RGBA), RGBA[:, :, :3]),
]


@pytest.mark.parametrize(("name", "data", "expected"), RGB_CASES)
def test_8bit_png_round_trip(tmp_path: Path, name: str, data: bytes, expected: np.ndarray) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    frame = load_image(path)
    assert frame.high is None
    assert frame.rgb is not None
    np.testing.assert_array_equal(frame.rgb, expected)
    assert frame.meta == {"source_path": str(path), "format": "png"}


def test_palette_png_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "palette.png"
    Image.fromarray(RGB).quantize(16).save(path)
    expected = np.asarray(Image.open(path).convert("RGB"))
    frame = load_image(path)
    assert frame.rgb is not None
    np.testing.assert_array_equal(frame.rgb, expected)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (smooth_rgb(), smooth_rgb()),
        (smooth_rgb()[:, :, 0], np.repeat(smooth_rgb()[:, :, :1], 3, axis=2)),
    ],
    ids=["rgb", "grey"],
)
def test_jpeg(tmp_path: Path, source: np.ndarray, expected: np.ndarray) -> None:
    path = tmp_path / "bag.jpg"
    path.write_bytes(jpeg_bytes(source))
    frame = load_image(path)
    assert frame.rgb is not None
    assert frame.rgb.shape == expected.shape
    assert frame.rgb.dtype == np.uint8
    assert np.abs(frame.rgb.astype(int) - expected.astype(int)).mean() < 2.0
    assert frame.meta == {"source_path": str(path), "format": "jpeg"}


@pytest.mark.parametrize(
    ("name", "data", "expected_format"),
    [("bag.jpg", png_bytes(RGB), "png"), ("bag.png", jpeg_bytes(RGB), "jpeg")],
)
def test_kind_comes_from_content(
    tmp_path: Path, name: str, data: bytes, expected_format: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    assert load_image(path).meta["format"] == expected_format


# --- 16-bit dual energy -----------------------------------------------------------------


@pytest.mark.parametrize("given_name", ["bag_high.png", "bag_low.png", "bag", "bag.png"])
def test_dual_energy_png_pair(tmp_path: Path, given_name: str) -> None:
    high_path, low_path = save_dual_energy_png(tmp_path / "bag", HIGH, LOW)
    assert (high_path.name, low_path.name) == ("bag_high.png", "bag_low.png")
    frame = load_image(tmp_path / given_name)
    assert frame.high is not None and frame.low is not None
    np.testing.assert_array_equal(frame.high, HIGH)
    np.testing.assert_array_equal(frame.low, LOW)
    assert frame.meta["format"] == "png"
    assert frame.meta["energy"] == "dual"
    assert frame.meta["source_path"] == str(tmp_path / given_name)
    assert (frame.meta["high_path"], frame.meta["low_path"]) == (str(high_path), str(low_path))


@pytest.mark.parametrize("name", ["single.png", "lonely_high.png"])
def test_16bit_png_without_partner_is_single_energy(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(png_bytes(HIGH))
    frame = load_image(path)
    assert frame.high is not None
    np.testing.assert_array_equal(frame.high, HIGH)
    assert frame.low is None
    assert frame.meta == {"source_path": str(path), "format": "png", "energy": "single"}


@pytest.mark.parametrize(
    ("pages", "expected_low"),
    [([HIGH, LOW], LOW), ([HIGH], None)],
    ids=["two-page", "one-page"],
)
def test_tiff_round_trip(
    tmp_path: Path, pages: list[np.ndarray], expected_low: np.ndarray | None
) -> None:
    path = tmp_path / "bag.tiff"
    path.write_bytes(tiff_bytes(tmp_path, pages))
    frame = load_image(path)
    assert frame.high is not None
    np.testing.assert_array_equal(frame.high, HIGH)
    if expected_low is None:
        assert frame.low is None
    else:
        assert frame.low is not None
        np.testing.assert_array_equal(frame.low, expected_low)
    assert frame.meta["format"] == "tiff"


def test_big_endian_tiff(tmp_path: Path) -> None:
    path = tmp_path / "big.tif"
    Image.frombytes("I;16B", (32, 24), HIGH.astype(">u2").tobytes()).save(path)
    assert path.read_bytes().startswith(b"MM\x00*")
    frame = load_image(path)
    assert frame.high is not None
    np.testing.assert_array_equal(frame.high, HIGH)


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("bag", ("bag_high.png", "bag_low.png")),
        ("bag.png", ("bag_high.png", "bag_low.png")),
        ("bag.PNG", ("bag_high.png", "bag_low.png")),
        ("bag.v2", ("bag.v2_high.png", "bag.v2_low.png")),
    ],
)
def test_dual_energy_paths(tmp_path: Path, stem: str, expected: tuple[str, str]) -> None:
    assert dual_energy_paths(tmp_path / stem) == (tmp_path / expected[0], tmp_path / expected[1])


@pytest.mark.parametrize(
    ("high", "low", "fragment"),
    [
        (HIGH, LOW[:10], "of one shape"),
        (HIGH.astype(np.int32), LOW, "expected high channel (H, W) uint16"),
        (HIGH, np.dstack([LOW, LOW]), "expected low channel (H, W) uint16"),
    ],
)
def test_save_dual_energy_png_refuses_bad_channels(
    tmp_path: Path, high: np.ndarray, low: np.ndarray, fragment: str
) -> None:
    with pytest.raises(BadInputError) as caught:
        save_dual_energy_png(tmp_path / "bag", high, low)
    assert fragment in assert_refused(caught, tmp_path / "bag")
    assert not any(tmp_path.iterdir())


def test_save_dual_energy_png_refuses_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(BadInputError) as caught:
        save_dual_energy_png(tmp_path / "nowhere" / "bag", HIGH, LOW)
    assert "does not exist" in assert_refused(caught, tmp_path / "nowhere" / "bag")


# --- refusals ---------------------------------------------------------------------------

RGB16 = np.dstack([HIGH, LOW, HIGH])
NOISE = bytes(RNG.integers(0, 256, 4000, dtype=np.uint8))
Writer = Callable[[Path], bytes]
# name, bytes (a function of tmp_path, as TIFFs are written to disk first), message fragment
REFUSALS: list[tuple[str, Writer, str]] = [
    ("empty.png", lambda _: b"", "file is empty"),
    ("half.png", lambda _: png_bytes(RGB)[:300], "truncated or corrupt PNG"),
    ("half16.png", lambda _: png_bytes(HIGH)[:300], "truncated or corrupt PNG"),
    ("header.png", lambda _: PNG_SIGNATURE + b"\x00" * 4, "no IHDR"),
    ("half.jpg", lambda _: jpeg_bytes(RGB)[:400], "truncated or corrupt JPEG"),
    ("noise.png", lambda _: NOISE, "unsupported file type"),
    ("notes.png", lambda _: b"bag 17: gun in side pocket\n" * 20, "a text file"),
    ("rgb16.png", lambda _: png_bytes(RGB16), "16-bit RGB PNG is not supported"),
    ("rgba16.png", lambda _: png_bytes(np.dstack([RGB16, HIGH])), "16-bit RGBA PNG"),
    ("grey8.tiff", lambda p: tiff_bytes(p, [GREY]), "expected 16-bit unsigned greyscale"),
    ("three.tiff", lambda p: tiff_bytes(p, [HIGH, LOW, HIGH]), "1 page or 2"),
    ("mixed.tiff", lambda p: tiff_bytes(p, [HIGH, LOW[:10]]), "pages of one shape"),
    ("half.tiff", lambda p: tiff_bytes(p, [HIGH, LOW])[:700], "truncated or corrupt TIFF"),
    ("orphan_low.png", lambda _: png_bytes(LOW), "without its high-energy partner"),
    ("noise.dcs", lambda _: b"\x02\x00" + NOISE, "DICOS"),
]


@pytest.mark.parametrize(("name", "writer", "fragment"), REFUSALS)
def test_refused(tmp_path: Path, name: str, writer: Writer, fragment: str) -> None:
    path = tmp_path / name
    path.write_bytes(writer(tmp_path))
    with pytest.raises(UnsupportedImageError) as caught:
        load_image(path)
    assert fragment in assert_refused(caught, path)


@pytest.mark.parametrize(
    ("name", "fragment"), [("missing.png", "file not found"), ("a_directory", "not a regular file")]
)
def test_refused_path(tmp_path: Path, name: str, fragment: str) -> None:
    (tmp_path / "a_directory").mkdir()
    path = tmp_path / name
    with pytest.raises(BadInputError) as caught:
        load_image(path)
    assert type(caught.value) is BadInputError
    assert fragment in assert_refused(caught, path)


# name, bytes, expected type, fragment; the limits are max_bytes=5000, max_pixels=500
LIMIT_CASES = [
    (
        "big.png",
        png_bytes(RNG.integers(0, 65536, (60, 60), dtype=np.uint16)),
        BadInputError,
        "file too large",
    ),
    (
        "wide.png",
        png_bytes(RGB),
        UnsupportedImageError,
        "image too large (32x24 = 768 pixels, limit 500)",
    ),
    ("wide16.png", png_bytes(HIGH), UnsupportedImageError, "image too large"),
    ("wide.jpg", jpeg_bytes(smooth_rgb()), UnsupportedImageError, "image too large (64x48"),
]


@pytest.mark.parametrize(("name", "data", "expected", "fragment"), LIMIT_CASES)
def test_limits(
    tmp_path: Path, name: str, data: bytes, expected: type[BadInputError], fragment: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(BadInputError) as caught:
        load_image(path, max_bytes=5000, max_pixels=500)
    assert type(caught.value) is expected
    assert fragment in assert_refused(caught, path)


def test_pixel_limit_applies_to_tiff_pages(tmp_path: Path) -> None:
    path = tmp_path / "bag.tiff"
    path.write_bytes(tiff_bytes(tmp_path, [HIGH, LOW]))
    with pytest.raises(UnsupportedImageError) as caught:
        load_image(path, max_pixels=500)
    assert "image too large" in assert_refused(caught, path)


def test_pair_with_mismatched_shapes_names_the_low_file(tmp_path: Path) -> None:
    (tmp_path / "bag_high.png").write_bytes(png_bytes(HIGH))
    (tmp_path / "bag_low.png").write_bytes(png_bytes(LOW[:, :20]))
    with pytest.raises(UnsupportedImageError) as caught:
        load_image(tmp_path / "bag_high.png")
    message = assert_refused(caught, tmp_path / "bag_low.png")
    assert "expected the shape of bag_high.png (24, 32), got (24, 20)" in message


@pytest.mark.parametrize(
    ("partner", "fragment"),
    [(png_bytes(RGB), "got 8-bit RGB"), (jpeg_bytes(RGB), "expected a 16-bit greyscale PNG")],
)
def test_pair_with_a_bad_partner_names_the_partner(
    tmp_path: Path, partner: bytes, fragment: str
) -> None:
    (tmp_path / "bag_high.png").write_bytes(png_bytes(HIGH))
    (tmp_path / "bag_low.png").write_bytes(partner)
    with pytest.raises(UnsupportedImageError) as caught:
        load_image(tmp_path / "bag_high.png")
    assert fragment in assert_refused(caught, tmp_path / "bag_low.png")


@pytest.mark.parametrize(
    ("data", "suffix", "expected"),
    [
        (png_bytes(RGB), ".bin", "png"),
        (jpeg_bytes(RGB), "", "jpeg"),
        (b"II*\x00rest", ".png", "tiff"),
        (b"MM\x00*rest", "", "tiff"),
        (b"\x00" * 128 + b"DICMrest", ".png", "dicos"),
        (b"\x08\x00\x05\x00", ".DCS", "dicos"),
        (b"\x08\x00\x05\x00", ".png", None),
        (b"hello", ".txt", None),
    ],
)
def test_sniff_format(data: bytes, suffix: str, expected: str | None) -> None:
    assert sniff_format(data, suffix) == expected


# --- fuzz -------------------------------------------------------------------------------

PREFIXES = [
    b"",
    PNG_SIGNATURE,
    png_bytes(GREY)[:33],  # a valid 8-bit IHDR
    png_bytes(HIGH)[:33],  # a valid 16-bit IHDR
    b"\xff\xd8\xff",
    b"II*\x00",
    b"MM\x00*",
    b"\x00" * 128 + b"DICM",
]


@settings(max_examples=100, deadline=None)
@given(
    prefix=st.sampled_from(PREFIXES),
    body=st.binary(max_size=2048),
    suffix=st.sampled_from([".png", ".jpg", ".tiff", ".dcs", ".bin"]),
)
def test_random_bytes_raise_only_edge_errors(
    tmp_path_factory: pytest.TempPathFactory, prefix: bytes, body: bytes, suffix: str
) -> None:
    path = tmp_path_factory.getbasetemp() / f"fuzz{suffix}"
    path.write_bytes(prefix + body)
    try:
        load_image(path, max_pixels=1_000_000)
    except EdgeError as exc:
        assert str(exc).startswith(f"{path}: ")
        assert "\n" not in str(exc)
