"""The one pseudo-colour renderer: orange organic, green inorganic, blue metal, black opaque.

Used by the simulator, the detector's preprocessing, the store and the UI alike, so a model
trained on rendered frames sees exactly what operators see.
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


def attenuation(channel: npt.NDArray[np.uint16]) -> npt.NDArray[np.float32]:
    """A = -ln(I / I0) per pixel, (H, W) float32, from a calibrated uint16 channel."""
    values = np.maximum(channel.astype(np.float32), 1.0)
    return np.maximum(np.log(np.float32(AIR_LEVEL)) - np.log(values), 0.0)


def material_ratio(
    a_high: npt.NDArray[np.float32], a_low: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """R = A_low / A_high, (H, W) float32; pixels with almost no attenuation read as organic."""
    ratio = a_low / np.maximum(a_high, 0.02)
    # Where the low channel is at the noise floor its attenuation is clipped, so the ratio
    # underestimates: such pixels are dense metal.
    ratio = np.where(a_low >= OPAQUE_ATTENUATION - 0.3, np.maximum(ratio, METAL_MIN_R + 0.5), ratio)
    return np.where(a_high < 0.03, 1.2, ratio).astype(np.float32)


def _hue(ratio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(H, W, 3) colour for each material ratio with soft transitions between classes."""
    to_green = np.clip((ratio - (ORGANIC_MAX_R - 0.1)) / 0.2, 0.0, 1.0)[..., None]
    to_blue = np.clip((ratio - (METAL_MIN_R - 0.15)) / 0.3, 0.0, 1.0)[..., None]
    colour = _ORANGE * (1.0 - to_green) + _GREEN * to_green
    return colour * (1.0 - to_blue) + _BLUE * to_blue


def render_pseudocolor(
    high: npt.NDArray[np.uint16], low: npt.NDArray[np.uint16] | None = None
) -> npt.NDArray[np.uint8]:
    """Standard screening colours, (H, W, 3) uint8 RGB, from calibrated uint16 channels.

    Brightness follows the high-energy attenuation; colour follows the material ratio
    (greyscale when only one energy is available); black where nothing passes.
    """
    a_high = attenuation(high)
    if low is None:
        hue = np.broadcast_to(np.array([150, 150, 150], np.float32), (*high.shape, 3))
    else:
        hue = _hue(material_ratio(a_high, attenuation(low)))
    # Saturation grows quickly with attenuation so thin objects still show their colour;
    # brightness falls with it on a log scale to black at opacity.
    saturation = np.clip(a_high / 0.5, 0.0, 1.0)[..., None]
    brightness = np.clip(1.0 - a_high / OPAQUE_ATTENUATION, 0.0, 1.0)[..., None] ** 0.8
    rgb = (_WHITE * (1.0 - saturation) + hue * saturation) * brightness
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


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
