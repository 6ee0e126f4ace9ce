"""Suite images read once: the same pixels as the image loader, every file hash-checked,
the loader's refusals kept; the read-ahead thread hands over items and errors in order."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import EdgeError
from edge.ingest.images import load_image
from edge.validation.read_ahead import ReadAhead
from edge.validation.suite import SuiteError, load_suite, sha256_file
from edge.validation.suite_read import load_suite_image

from .suite_files import make_suite


def test_the_same_pixels_as_the_image_loader(tmp_path: Path) -> None:
    suite = load_suite(make_suite(tmp_path / "suite", images=3))
    for image in suite.images:
        rgb = load_suite_image(image, suite, channels=False)
        assert rgb.rgb is not None and rgb.rgb.dtype == np.uint8
        np.testing.assert_array_equal(rgb.rgb, load_image(image.file).rgb)
        pair = load_suite_image(image, suite, channels=True)
        reference = load_image(image.channels[0]) if image.channels else None
        assert reference is not None and pair.high is not None and pair.low is not None
        np.testing.assert_array_equal(pair.high, reference.high)
        np.testing.assert_array_equal(pair.low, reference.low)
        assert pair.high.dtype == np.uint16 and pair.meta["energy"] == "dual"


def test_every_file_is_hash_checked(tmp_path: Path) -> None:
    suite = load_suite(make_suite(tmp_path / "suite", images=2))
    image = suite.images[0]
    assert image.channels is not None
    low = image.channels[1]
    pixels = cv2.imread(str(low), cv2.IMREAD_UNCHANGED)
    assert pixels is not None
    pixels[0, 0] ^= 1
    cv2.imwrite(str(low), pixels)
    load_suite_image(image, suite, channels=False)  # the pseudo-colour file is unchanged
    with pytest.raises(SuiteError, match="changed since the suite was made"):
        load_suite_image(image, suite, channels=True)


def test_other_kinds_go_to_the_loader_and_its_refusals(tmp_path: Path) -> None:
    suite = load_suite(make_suite(tmp_path / "suite", images=2))
    grey = suite.images[0].file  # an 8-bit greyscale PNG: the loader replicates it
    cv2.imwrite(str(grey), np.full((48, 64), 77, np.uint8))
    broken = suite.images[1].file  # a PNG cut short: the loader says so
    broken.write_bytes(broken.read_bytes()[:200])
    edited = {p.relative_to(suite.root).as_posix(): sha256_file(p) for p in (grey, broken)}
    suite = dataclasses.replace(suite, files={**suite.files, **edited})  # it vouches for them
    frame = load_suite_image(suite.images[0], suite, channels=False)
    assert frame.rgb is not None and frame.rgb.shape == (48, 64, 3) and (frame.rgb == 77).all()
    with pytest.raises(EdgeError, match=str(broken)):
        load_suite_image(suite.images[1], suite, channels=False)


def test_read_ahead_keeps_order_and_hands_over_errors() -> None:
    def items() -> Iterator[int]:
        yield from range(5)
        raise ValueError("the sixth item cannot be made")

    got = []
    with pytest.raises(ValueError, match="sixth"), ReadAhead(items(), ahead=2) as ahead:
        for item in ahead:
            got.append(item)
    assert got == [0, 1, 2, 3, 4]


def test_read_ahead_stops_its_thread_when_left_early() -> None:
    made: list[int] = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            made.append(n)
            yield n
            n += 1

    before = threading.active_count()
    with ReadAhead(endless(), ahead=2) as ahead:
        for item in ahead:
            if item == 3:
                break
    assert threading.active_count() == before
    assert len(made) <= 3 + 1 + 2 + 1  # taken, one in the worker's hand, `ahead` queued
