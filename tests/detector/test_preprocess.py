from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from edge.detector.manifest import InputSpec
from edge.detector.preprocess import (
    Preprocessor,
    letterbox,
    letterbox_geometry,
    stretch,
    unletterbox_boxes,
)
from edge.frames import AIR_LEVEL


@pytest.mark.parametrize(
    ("frame_wh", "new_wh", "resized_wh", "top_bottom", "left_right"),
    [
        # 1000x700 into 512: r = 0.512, height 358.4 -> 358, pad 154 split 77 / 77.
        ((1000, 700), (512, 512), (512, 358), (77, 77), (0, 0)),
        ((1000, 700), (640, 640), (640, 448), (96, 96), (0, 0)),
        # Taller than wide.
        ((700, 1000), (640, 640), (448, 640), (0, 0), (96, 96)),
        # Odd padding: 358.912 -> 359, pad 153 -> 76 top, 77 bottom.
        ((1000, 701), (512, 512), (512, 359), (76, 77), (0, 0)),
        # 448.64 -> 449, pad 191 -> 95 left, 96 right.
        ((701, 1000), (640, 640), (449, 640), (0, 0), (95, 96)),
        # 2.5 rounds half to even (Python's round), as ultralytics does: 2, pad 1 / 1.
        ((8, 5), (4, 4), (4, 2), (1, 1), (0, 0)),
        # Upscaling and non-square inputs.
        ((300, 200), (640, 480), (640, 427), (26, 27), (0, 0)),
        ((640, 640), (640, 640), (640, 640), (0, 0), (0, 0)),
        # A sliver still gets a pixel: 3000 x 0.213 would round to 0.
        ((1, 3000), (640, 640), (1, 640), (0, 0), (319, 320)),
    ],
)
def test_letterbox_matches_ultralytics_split(
    frame_wh: tuple[int, int],
    new_wh: tuple[int, int],
    resized_wh: tuple[int, int],
    top_bottom: tuple[int, int],
    left_right: tuple[int, int],
) -> None:
    w, h = frame_wh
    rng = np.random.default_rng(1)
    image = rng.integers(0, 100, (h, w, 3), np.uint8)
    out, info = letterbox(image, *new_wh, pad_value=114)
    assert out.shape == (new_wh[1], new_wh[0], 3)
    assert (info.resized_w, info.resized_h) == resized_wh
    assert (info.pad_y, info.pad_x) == (top_bottom[0], left_right[0])
    top, bottom = top_bottom
    left, right = left_right
    inner = out[top : new_wh[1] - bottom, left : new_wh[0] - right]
    expected = image if frame_wh == resized_wh else cv2.resize(image, resized_wh)
    np.testing.assert_array_equal(inner, expected)
    # Everything else is padding (the content is < 100, so 114 marks padding only).
    assert int((out == 114).all(axis=2).sum()) == new_wh[0] * new_wh[1] - w_h(resized_wh)


def w_h(size: tuple[int, int]) -> int:
    return size[0] * size[1]


def test_letterbox_keeps_a_single_channel_axis() -> None:
    out, _ = letterbox(np.zeros((10, 20, 1), np.uint16), 16, 16, pad_value=7)
    assert out.shape == (16, 16, 1)
    assert out[0, 0, 0] == 7


def test_stretch_scales_axes_independently() -> None:
    out, info = stretch(np.zeros((700, 1000, 3), np.uint8), 640, 320)
    assert out.shape == (320, 640, 3)
    assert (info.scale_x, info.scale_y, info.pad_x, info.pad_y) == (0.64, 320 / 700, 0, 0)


def test_unletterbox_inverts_placement_and_clips() -> None:
    info = letterbox_geometry(1000, 701, 512, 512)
    frame_boxes = np.array([[100, 200, 300, 650], [0, 0, 1000, 701]], np.float32)
    lb = frame_boxes.copy()
    lb[:, 0::2] = lb[:, 0::2] * info.scale_x + info.pad_x
    lb[:, 1::2] = lb[:, 1::2] * info.scale_y + info.pad_y
    np.testing.assert_allclose(unletterbox_boxes(lb, info, 1000, 701), frame_boxes, atol=1e-3)
    outside = np.array([[-50, -10, 600, 600]], np.float32)
    np.testing.assert_allclose(
        unletterbox_boxes(outside, info, 1000, 701), [[0, 0, 1000, 701]], atol=1e-3
    )


def spec(**fields: Any) -> InputSpec:
    base: dict[str, Any] = {
        "width": 64,
        "height": 48,
        "representation": "pseudocolor",
        "scale": 1 / 255,
    }
    return InputSpec.model_validate(base | fields)


def reference_tensor(image: np.ndarray, s: InputSpec, pad: float, channel: int = 0) -> np.ndarray:
    """The obvious, slow way: letterbox (or stretch), to float64, normalise, CHW."""
    if s.letterbox:
        placed, _ = letterbox(image, s.width, s.height, pad)
    else:
        placed, _ = stretch(image, s.width, s.height)
    x = placed.astype(np.float64)
    if s.representation == "dual_energy":
        x = x / 65535
    x = x * (s.scale or 1.0)
    channels = slice(0, x.shape[2]) if x.shape[2] > 1 else slice(channel, channel + 1)
    if s.mean is not None:
        x = x - np.asarray(s.mean)[channels]
    if s.std is not None:
        x = x / np.asarray(s.std)[channels]
    return x.transpose(2, 0, 1)[None].astype(np.float32)


RGB_CASES = [
    pytest.param(spec(), id="scale"),
    pytest.param(spec(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]), id="mean-std"),
    pytest.param(spec(scale=None, pad_value=0), id="raw"),
    pytest.param(spec(letterbox=False), id="stretch"),
]


@pytest.mark.parametrize("fresh", [False, True], ids=["reused", "fresh"])
@pytest.mark.parametrize("input_spec", RGB_CASES)
def test_rgb_tensor_equals_reference(input_spec: InputSpec, fresh: bool) -> None:
    rng = np.random.default_rng(2)
    pre = Preprocessor(input_spec, fresh=fresh)
    given: list[tuple[np.ndarray, np.ndarray]] = []
    # Several sizes in a row: a new size must re-pad what the previous frame covered.
    for w, h in [(100, 70), (70, 100), (64, 48), (31, 97), (100, 70), (100, 70)]:
        image = rng.integers(0, 256, (h, w, 3), np.uint8)
        tensor, info = pre.from_rgb(image)
        given.append((tensor, tensor.copy()))
        assert tensor.shape == (1, 3, 48, 64) and tensor.dtype == np.float32
        expected = reference_tensor(image, input_spec, input_spec.pad_value)
        np.testing.assert_allclose(tensor, expected, rtol=1e-6, atol=1e-6)
        geometry = letterbox(image, 64, 48, 0)[1] if input_spec.letterbox else None
        if geometry is not None:
            assert info == geometry
    if fresh:  # every tensor the caller's own: later calls leave it alone
        assert len({id(t) for t, _ in given}) == len(given)
        for tensor, copy in given:
            np.testing.assert_array_equal(tensor, copy)


@pytest.mark.parametrize(
    "input_spec",
    [
        pytest.param(spec(representation="dual_energy", scale=None), id="unit"),
        pytest.param(
            spec(representation="dual_energy", scale=2.0, mean=[0.5, 0.4], std=[0.2, 0.3]),
            id="mean-std",
        ),
    ],
)
@pytest.mark.parametrize("fresh", [False, True], ids=["reused", "fresh"])
def test_dual_energy_tensor_pads_with_air(input_spec: InputSpec, fresh: bool) -> None:
    rng = np.random.default_rng(3)
    pre = Preprocessor(input_spec, fresh=fresh)
    for w, h in [(90, 40), (40, 90)]:
        high = rng.integers(0, 65536, (h, w), np.uint16)
        low = rng.integers(0, 65536, (h, w), np.uint16)
        tensor, _ = pre.from_planes((high, low))
        # Planes are resized one by one (OpenCV rounds 2-channel uint16 slightly differently).
        expected = np.concatenate(
            [
                reference_tensor(p[..., None], input_spec, AIR_LEVEL, c)
                for c, p in enumerate((high, low))
            ],
            axis=1,
        )
        np.testing.assert_allclose(tensor, expected, rtol=1e-5, atol=1e-5)
    air = (AIR_LEVEL / 65535 * (input_spec.scale or 1.0) - (input_spec.mean or [0, 0])[0]) / (
        input_spec.std or [1, 1]
    )[0]
    assert tensor[0, 0, 0, 0] == pytest.approx(air, rel=1e-6)


def test_initial_tensor_is_all_padding() -> None:
    pre = Preprocessor(spec())
    np.testing.assert_allclose(pre.tensor, np.float32(114 / 255), rtol=1e-6)
