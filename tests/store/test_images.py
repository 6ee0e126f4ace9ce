"""Image files of the log: lossless, readable by standard tools, written whole or not at all."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.frames import Frame
from edge.ingest.images import load_image
from edge.store.errors import ImageMissingError
from edge.store.images import (
    decode_files,
    encode_frame,
    ensure_dir,
    is_temp_name,
    pixel_sha256,
    relative_paths,
    scan_images,
    write_durable,
)

from .conftest import dual_frame, rgb_frame

WHEN = datetime(2026, 11, 27, 23, 59, 59, tzinfo=UTC)


def single_frame() -> Frame:
    return Frame(high=dual_frame(3).high)


@pytest.mark.parametrize(
    ("frame", "channels", "names"),
    [
        (dual_frame(1), ["high", "low"], ["f-x_high.png", "f-x_low.png"]),
        (single_frame(), ["high"], ["f-x_high.png"]),
        (rgb_frame(2), ["rgb"], ["f-x.png"]),
    ],
    ids=["dual", "single", "rgb"],
)
def test_round_trip_is_lossless_and_readable_by_standard_tools(
    tmp_path: Path, frame: Frame, channels: list[str], names: list[str]
) -> None:
    encoded = encode_frame(frame)
    assert encoded.channels == channels
    relative = relative_paths("f-x", WHEN, channels)
    assert relative == [f"images/2026/11/27/{name}" for name in names]
    ensure_dir((tmp_path / relative[0]).parent, set())
    write_durable(
        [
            (tmp_path / path, data)
            for path, data in zip(relative, encoded.files.values(), strict=True)
        ]
    )
    back = decode_files(tmp_path, "f-x", channels, relative, encoded.sha256)
    for name in ("high", "low", "rgb"):
        expected, got = getattr(frame, name), getattr(back, name)
        assert (expected is None) == (got is None)
        if expected is not None:
            assert got.dtype == expected.dtype and np.array_equal(got, expected)
    # Pillow and the appliance's own ingest read the files as they were given.
    first = Image.open(tmp_path / relative[0])
    if frame.rgb is not None:
        assert first.mode == "RGB" and np.array_equal(np.asarray(first), frame.rgb)
    else:
        assert first.mode.startswith("I;16") and np.array_equal(np.asarray(first), frame.high)
        ingested = load_image(tmp_path / relative[0])
        assert np.array_equal(ingested.high, frame.high)
        if frame.low is not None:
            assert ingested.low is not None and np.array_equal(ingested.low, frame.low)


def test_sha256_is_of_the_contract_pixel_layout() -> None:
    frame = dual_frame(4)
    assert frame.high is not None and frame.low is not None
    planar = frame.high.astype("<u2").tobytes() + frame.low.astype("<u2").tobytes()
    assert pixel_sha256(frame) == hashlib.sha256(planar).hexdigest()


def test_damaged_or_missing_files_are_reported(tmp_path: Path) -> None:
    frame = dual_frame(5)
    encoded = encode_frame(frame)
    relative = relative_paths("f-y", WHEN, encoded.channels)
    ensure_dir((tmp_path / relative[0]).parent, set())
    write_durable(
        [
            (tmp_path / path, data)
            for path, data in zip(relative, encoded.files.values(), strict=True)
        ]
    )
    other = encode_frame(dual_frame(6)).files["low"]
    (tmp_path / relative[1]).write_bytes(other)  # a valid PNG, the wrong pixels
    with pytest.raises(ImageMissingError, match="do not match"):
        decode_files(tmp_path, "f-y", encoded.channels, relative, encoded.sha256)
    (tmp_path / relative[1]).write_bytes(b"not a png")
    with pytest.raises(ImageMissingError, match="not a PNG"):
        decode_files(tmp_path, "f-y", encoded.channels, relative, encoded.sha256)
    (tmp_path / relative[1]).unlink()
    with pytest.raises(ImageMissingError, match="missing"):
        decode_files(tmp_path, "f-y", encoded.channels, relative, encoded.sha256)


def test_write_durable_leaves_only_the_final_file(tmp_path: Path) -> None:
    target = tmp_path / "f-1_high.png"
    write_durable([(target, b"abc"), (tmp_path / "f-1_low.png", b"de")])
    assert target.read_bytes() == b"abc"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f-1_high.png", "f-1_low.png"]


def test_write_durable_removes_its_temp_file_when_the_write_fails(tmp_path: Path) -> None:
    high, low = tmp_path / "f-1_high.png", tmp_path / "f-1_low.png"
    low.mkdir()  # renaming over a directory fails after the high file was renamed
    with pytest.raises(OSError):
        write_durable([(high, b"abc"), (low, b"de")])
    assert [p.name for p in tmp_path.iterdir()] == ["f-1_low.png"]  # only the obstacle


def test_scan_sorts_images_temp_files_and_foreign_files(tmp_path: Path) -> None:
    day = tmp_path / "images" / "2026" / "11" / "27"
    day.mkdir(parents=True)
    (day / "f-1_high.png").write_bytes(b"12345")
    (day / ".f-2_high.png.1a2b3c4d.tmp").write_bytes(b"x")
    (day / "README.txt").write_text("hi")
    scan = scan_images(tmp_path)
    assert scan.files == {"images/2026/11/27/f-1_high.png": 5}
    assert scan.temp_files == ["images/2026/11/27/.f-2_high.png.1a2b3c4d.tmp"]
    assert scan.foreign == ["images/2026/11/27/README.txt"]
    assert is_temp_name(".f-2_high.png.1a2b3c4d.tmp") and not is_temp_name("f-1_high.png")
