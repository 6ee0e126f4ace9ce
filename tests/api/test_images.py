"""Fast image renders: the strip-parallel PNG encoder, palette PNGs, the fast reader of the
image log's planes, and thumbnails (`?max=`) over the API."""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.api import png as png_module
from edge.api.app import AppContext, create_app
from edge.api.planes import PlaneCache, decode_plane, load_planes, pixel_digest
from edge.api.png import adler32_combine, by_strips, encode_png, zlib_stream
from edge.api.views import (
    MATERIAL_PALETTE,
    boxed_view,
    grey_view,
    material_index,
    material_view,
    palette_rgb,
)
from edge.auth import UserStore
from edge.detector import Detector
from edge.frames import Frame
from edge.ingest.png_quick import decode_png
from edge.pipeline import Intake, LocalScreener, Pipeline
from edge.pseudocolor import material_classes, render_pseudocolor
from edge.sim.scene import simulate_bag
from edge.store import ImageMissingError, Store
from edge.store.images import pixel_sha256

from .accounts import ALARM_OUTPUT, TestClient, login

MakeDir = Callable[..., Path]


@functools.cache
def bag(seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    scene = simulate_bag(seed, threats=["gun"])
    return scene.high, scene.low


def decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def test_adler32_combine_matches_zlib() -> None:
    rng = np.random.default_rng(1)
    for size_a, size_b in ((0, 5), (1, 1), (70_000, 3), (5, 200_000)):
        a, b = rng.bytes(size_a), rng.bytes(size_b)
        assert adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_strips_join_into_one_valid_zlib_stream(
    monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setattr(png_module, "WORKERS", workers)
    monkeypatch.setattr(png_module, "MIN_STRIP_BYTES", 1000)
    rows = np.random.default_rng(2).integers(0, 4, (301, 2049), dtype=np.uint8)
    stream = zlib_stream(rows)
    assert zlib.decompress(stream) == rows.tobytes()  # header, deflate and Adler-32 all check


def test_large_views_round_trip_exactly() -> None:
    high, low = bag()
    grey = cv2.resize(high, (1024, 768)).astype(np.uint8)  # > MIN_STRIP_BYTES: in strips
    rgb = np.dstack([grey, 255 - grey, grey // 2])
    assert (decode(encode_png(grey)) == grey).all()
    assert decode(encode_png(grey)).ndim == 2  # grey views travel as 1-channel PNGs
    assert (cv2.cvtColor(decode(encode_png(rgb)), cv2.COLOR_BGR2RGB) == rgb).all()


def test_material_goes_out_as_a_palette_png_with_the_same_colours() -> None:
    high, low = bag()
    data = encode_png(material_index(high, low), MATERIAL_PALETTE)
    assert data[25] == 3  # IHDR colour type: palette
    shown = cv2.cvtColor(
        cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
    )
    assert (shown == material_view(high, low)).all()
    assert len(data) < len(encode_png(material_view(high, low)))


@pytest.mark.parametrize(
    ("image", "palette"),
    [
        (np.zeros((4, 4), np.uint16), None),
        (np.zeros((4, 4, 4), np.uint8), None),
        (np.zeros((4, 4, 3), np.uint8), MATERIAL_PALETTE),
        (np.zeros((4, 4), np.uint8), np.zeros((257, 3), np.uint8)),
    ],
)
def test_the_encoder_refuses_what_it_cannot_write(
    image: np.ndarray, palette: np.ndarray | None
) -> None:
    with pytest.raises(Exception, match="PNG: expected"):
        encode_png(image, palette)


# -------------------------------------------------------------------------------- planes


def stored_frame(tmp_path: Path) -> tuple[Store, str, Frame]:
    store = Store(tmp_path / "data")
    high, low = bag()
    pipeline = Pipeline(None, store=store)
    ticket = pipeline.ingest(Frame(high=high, low=low), Intake(source="test", bag="b"))
    ticket.screened.result(30)
    pipeline.close()
    return store, ticket.id, Frame(high=high, low=low)


def test_planes_read_fast_equal_the_stores_own_reading(tmp_path: Path) -> None:
    store, frame_id, sent = stored_frame(tmp_path)
    mine, theirs = load_planes(store, frame_id), store.load_image(frame_id)
    assert (mine.high == theirs.high).all() and (mine.low == theirs.low).all()
    assert mine.high.dtype == np.uint16 and mine.meta == theirs.meta
    assert pixel_digest(mine) == pixel_sha256(sent)
    path = store.data_dir / store.get_frame(frame_id).image_paths[0]
    assert decode_png(path.read_bytes()) is not None  # the log's level-0 files: the quick path
    store.close()


def test_other_pngs_fall_back_to_opencv_and_damage_is_caught(tmp_path: Path) -> None:
    high, _ = bag()
    filtered = cv2.imencode(".png", high, [cv2.IMWRITE_PNG_COMPRESSION, 6])[1].tobytes()
    assert decode_png(filtered) is None  # rows with per-row filters: not the quick path...
    assert (decode_plane(filtered, "high") == high).all()  # ...but read all the same
    assert decode_png(b"not a png at all") is None
    assert decode_png(filtered[:200]) is None  # truncated
    huge = bytearray(encode_png(np.zeros((2, 2), np.uint8)))
    huge[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR says 10^10 pixels
    assert decode_png(bytes(huge)) is None  # refused before anything is allocated

    store, frame_id, _ = stored_frame(tmp_path)
    cache = PlaneCache(store, frames=1)
    cache.load(frame_id)
    path = store.data_dir / store.get_frame(frame_id).image_paths[1]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one pixel byte of the low plane flipped on disk
    path.write_bytes(bytes(data))
    assert cache.load(frame_id) is not None  # checked once, kept: no second read
    with pytest.raises(ImageMissingError, match="SHA-256|not a PNG"):
        load_planes(store, frame_id)
    path.unlink()
    with pytest.raises(ImageMissingError, match="missing"):
        load_planes(store, frame_id)
    store.close()


# -------------------------------------------------------------------------------- thumbnails


@pytest.fixture
def logged(
    tmp_path: Path, tiny_model_dir: MakeDir, users: UserStore
) -> Iterator[tuple[TestClient, str]]:
    store = Store(tmp_path / "data")
    pipeline = Pipeline(LocalScreener(Detector.load(tiny_model_dir([ALARM_OUTPUT]))), store=store)
    high, low = bag()
    ticket = pipeline.ingest(Frame(high=high, low=low), Intake(source="test", bag="b"))
    ticket.screened.result(30)
    with TestClient(create_app(AppContext(service=pipeline, users=users, store=store))) as client:
        login(client, "olga")
        yield client, ticket.id
    pipeline.close()
    store.close()


@pytest.mark.parametrize("view", ["pseudo", "high", "low", "material"])
def test_thumbnails_are_shrunk_to_the_size_asked(logged: tuple[TestClient, str], view: str) -> None:
    client, frame_id = logged
    height, width = bag()[0].shape
    url = f"/api/frames/{frame_id}/image"
    full = decode(client.get(url, params={"view": view}).content)
    for boxes in ("0", "1"):
        response = client.get(url, params={"view": view, "max": "64", "boxes": boxes})
        assert response.status_code == 200, response.text
        thumb = decode(response.content)
        assert max(thumb.shape[:2]) == 64
        assert abs(thumb.shape[1] / thumb.shape[0] - width / height) < 0.05
    assert thumb.ndim == 3  # boxes are drawn in colour, at the thumbnail's scale
    plain = decode(client.get(url, params={"view": view, "max": "64"}).content)
    assert plain.ndim == full.ndim
    # An area average: close to the full image shrunk the same way.
    expected = cv2.resize(full, plain.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(plain.astype(int) - expected.astype(int)).mean() < 2
    # A max larger than the image: the image at full size.
    assert decode(client.get(url, params={"view": view, "max": "4096"}).content).shape == full.shape


@pytest.mark.parametrize("value", ["0", "15", "4097", "-5", "abc", "12.5", "1e3", "", "9" * 30])
def test_a_bad_thumbnail_size_is_a_400(logged: tuple[TestClient, str], value: str) -> None:
    client, frame_id = logged
    response = client.get(f"/api/frames/{frame_id}/image", params={"max": value})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_input" and "max: expected a whole number" in error["message"]


def test_views_computed_in_strips_equal_the_whole_image_renderers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    high, low = bag()
    whole_pseudo, whole_classes = render_pseudocolor(high, low), material_classes(high, low)
    monkeypatch.setattr(png_module, "MIN_STRIP_BYTES", 1000)
    assert len(png_module.strip_bounds(high.shape[0], high[0].nbytes * 2)) > 1
    assert (by_strips(render_pseudocolor, high, low) == whole_pseudo).all()
    assert (material_index(high, low) == whole_classes).all()


KNIFE = [{"class": "knife", "score": 0.87, "box": [20, 30, 120, 90]}]


def test_boxes_on_grey_and_material_views_stay_palette_images() -> None:
    high, low = bag()
    for image, palette in (
        (grey_view(high)[:200, :300], None),
        (material_index(high, low)[:200, :300], MATERIAL_PALETTE),
    ):
        index, colours = boxed_view(image, palette, KNIFE)
        assert colours is not None and index.ndim == 2
        data = encode_png(index, colours)
        assert data[25] == 3  # a palette PNG
        shown = cv2.cvtColor(decode(data), cv2.COLOR_BGR2RGB)
        assert tuple(shown[60, 20]) == (255, 45, 85)  # the box's left edge
        expected = image if palette is None else palette[image]
        inside = shown[60, 70] if palette is not None else shown[60, 70, 0]
        assert (inside == expected[60, 70]).all()  # inside stays the image


def test_boxes_on_a_grey_view_using_every_level_are_drawn_in_rgb() -> None:
    grey = np.tile(np.arange(256, dtype=np.uint8), (64, 2))
    image, palette = boxed_view(grey, None, KNIFE)
    assert palette is None and image.shape == (64, 512, 3)
    assert tuple(image[40, 20]) == (255, 45, 85)


def test_palette_images_expand_to_their_colours() -> None:
    high, low = bag()
    index = material_index(high, low)
    assert (palette_rgb(index, MATERIAL_PALETTE) == material_view(high, low)).all()
