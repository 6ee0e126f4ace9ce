"""The one pseudo-colour renderer: orange organic, green inorganic, blue metal, black opaque.

Used by the simulator, the detector's preprocessing, the store and the UI alike, so a model
trained on rendered frames sees exactly what operators see. Rendering goes through lookup
tables (uint16 value -> attenuation, then attenuation x material ratio -> colour) so a
1000x850 frame renders in a few milliseconds.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edge.frames import AIR_LEVEL

# Ratio R = A_low / A_high separating the material classes (DOMAIN.md): organic matter
# (Z ~ 6-8) sits near 1.2, aluminium/glass near 1.6-1.9, iron and copper above 3.
ORGANIC_MAX_R = 1.40
METAL_MIN_R = 2.30
# Attenuation (natural log units) past which the high channel carries no usable signal.
OPAQUE_ATTENUATION = 5.3

_ORANGE = np.array([235, 140, 30], np.float32)
_GREEN = np.array([40, 170, 60], np.float32)
_BLUE = np.array([40, 90, 220], np.float32)
_WHITE = np.array([255, 255, 255], np.float32)
_GREY = np.array([150, 150, 150], np.float32)

# Colour table resolution: attenuation steps of ~0.005 and ratio steps of ~0.016 are below
# one 8-bit level of the output.
_A_BINS = 1024
_R_MIN, _R_MAX, _R_BINS = 0.8, 4.8, 256


def _attenuation_table() -> npt.NDArray[np.float32]:
    values = np.maximum(np.arange(65536, dtype=np.float64), 1.0)
    table: npt.NDArray[np.float32] = np.maximum(np.log(AIR_LEVEL) - np.log(values), 0.0).astype(
        np.float32
    )
    return table


_A_TABLE = _attenuation_table()


def attenuation(channel: npt.NDArray[np.uint16]) -> npt.NDArray[np.float32]:
    """A = -ln(I / I0) per pixel, (H, W) float32, from a calibrated uint16 channel."""
    out: npt.NDArray[np.float32] = _A_TABLE[channel]
    return out


def material_ratio(
    a_high: npt.NDArray[np.float32], a_low: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """R = A_low / A_high, (H, W) float32; pixels with almost no attenuation read as organic."""
    ratio = a_low / np.maximum(a_high, np.float32(0.02))
    # Where the low channel is at the noise floor its attenuation is clipped, so the ratio
    # underestimates: such pixels are dense metal.
    floor = np.float32(METAL_MIN_R + 0.5)
    ratio = np.where(a_low >= OPAQUE_ATTENUATION - 0.3, np.maximum(ratio, floor), ratio)
    out: npt.NDArray[np.float32] = np.where(a_high < 0.03, np.float32(1.2), ratio).astype(
        np.float32
    )
    return out


def _hue(ratio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(..., 3) colour for each material ratio with soft transitions between classes."""
    to_green = np.clip((ratio - (ORGANIC_MAX_R - 0.1)) / 0.2, 0.0, 1.0)[..., None]
    to_blue = np.clip((ratio - (METAL_MIN_R - 0.15)) / 0.3, 0.0, 1.0)[..., None]
    colour = _ORANGE * (1.0 - to_green) + _GREEN * to_green
    out: npt.NDArray[np.float32] = colour * (1.0 - to_blue) + _BLUE * to_blue
    return out


def _shade(hue: npt.NDArray[np.float32], a_high: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """Blend white -> hue with attenuation (thin objects keep their colour), darken to black."""
    saturation = np.clip(a_high / 0.5, 0.0, 1.0)[..., None]
    brightness = np.clip(1.0 - a_high / OPAQUE_ATTENUATION, 0.0, 1.0)[..., None] ** 0.8
    rgb = (_WHITE * (1.0 - saturation) + hue * saturation) * brightness
    out: npt.NDArray[np.uint8] = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    return out


def _colour_table() -> npt.NDArray[np.uint8]:
    a = ((np.arange(_A_BINS, dtype=np.float32) + 0.5) * (OPAQUE_ATTENUATION / _A_BINS))[:, None]
    r = (_R_MIN + (np.arange(_R_BINS, dtype=np.float32) + 0.5) * ((_R_MAX - _R_MIN) / _R_BINS))[
        None, :
    ]
    hue = _hue(np.broadcast_to(r, (_A_BINS, _R_BINS)).astype(np.float32))
    return _shade(hue, np.broadcast_to(a, (_A_BINS, _R_BINS)).astype(np.float32))


_COLOUR_TABLE = _colour_table()
_FLAT_COLOUR_TABLE = _COLOUR_TABLE.reshape(-1, 3)  # row a * _R_BINS + r
_GREY_TABLE = _shade(
    np.broadcast_to(_GREY, (_A_BINS, 3)).astype(np.float32),
    ((np.arange(_A_BINS, dtype=np.float32) + 0.5) * (OPAQUE_ATTENUATION / _A_BINS)),
)


def _a_index(a_high: npt.NDArray[np.float32]) -> npt.NDArray[np.intp]:
    scaled = np.minimum(a_high * np.float32(_A_BINS / OPAQUE_ATTENUATION), np.float32(_A_BINS - 1))
    index: npt.NDArray[np.intp] = scaled.astype(np.intp)
    return index


# uint16 high value -> row of the colour table (times _R_BINS): _a_index(attenuation(v))
# for every possible value, so rendering needs no float work for the brightness.
_ROW_TABLE = (_a_index(_A_TABLE) * _R_BINS).astype(np.int32)


def render_pseudocolor(
    high: npt.NDArray[np.uint16], low: npt.NDArray[np.uint16] | None = None
) -> npt.NDArray[np.uint8]:
    """Standard screening colours, (H, W, 3) uint8 RGB, from calibrated uint16 channels.

    Brightness follows the high-energy attenuation; colour follows the material ratio
    (greyscale when only one energy is available); black where nothing passes. Pixel for
    pixel `_COLOUR_TABLE[_a_index(a_high), ratio bin]` (tests/test_pseudocolor.py), computed
    with table lookups and in-place float32 steps: the pipeline renders every frame with it.
    """
    rows = np.take(_ROW_TABLE, high)
    if low is None:
        rows //= _R_BINS
        grey: npt.NDArray[np.uint8] = np.take(_GREY_TABLE, rows, axis=0)
        return grey
    a_high, a_low = np.take(_A_TABLE, high), np.take(_A_TABLE, low)
    # material_ratio, in place: R = A_low / max(A_high, 0.02); dense metal where the low
    # channel is at its noise floor; nearly empty pixels read as organic.
    ratio = np.maximum(a_high, np.float32(0.02))
    np.divide(a_low, ratio, out=ratio)
    np.maximum(ratio, np.float32(METAL_MIN_R + 0.5), out=ratio,
               where=a_low >= OPAQUE_ATTENUATION - 0.3)  # fmt: skip
    np.copyto(ratio, np.float32(1.2), where=a_high < 0.03)
    ratio -= np.float32(_R_MIN)
    ratio *= np.float32(_R_BINS / (_R_MAX - _R_MIN))
    np.clip(ratio, 0, _R_BINS - 1, out=ratio)
    rows += ratio.astype(np.int32)
    # np.take on a flat table: several times faster than numpy's two-index gather.
    rgb: npt.NDArray[np.uint8] = np.take(_FLAT_COLOUR_TABLE, rows, axis=0)
    return rgb


def material_classes(
    high: npt.NDArray[np.uint16], low: npt.NDArray[np.uint16]
) -> npt.NDArray[np.uint8]:
    """(H, W) uint8 map: 0 background, 1 organic, 2 inorganic, 3 metal, 4 opaque."""
    a_high = attenuation(high)
    ratio = material_ratio(a_high, attenuation(low))
    out = np.where(ratio < ORGANIC_MAX_R, 1, np.where(ratio < METAL_MIN_R, 2, 3)).astype(np.uint8)
    out[a_high < 0.05] = 0
    out[a_high >= OPAQUE_ATTENUATION] = 4
    return out
