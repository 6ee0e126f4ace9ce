"""Acquisition with a tunable scanner: photon noise, blur and tube voltage as knobs.

The bag simulator (scene.py) acquires with one fixed, healthy scanner. Calibration pieces
(step wedges, the image-quality test piece) need the same physics with a scanner that can
be degraded on purpose: more noise, more blur, a lower tube voltage (kV).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge.frames import AIR_LEVEL
from edge.sim.scene import ELECTRONIC_NOISE, PHOTONS_HIGH, PHOTONS_LOW

Attenuation = npt.NDArray[np.float32]
Channel = npt.NDArray[np.uint16]


@dataclass(frozen=True)
class ScannerQuality:
    """`noise`: multiplies photon and electronic noise (1 = healthy); `blur_px`: Gaussian
    sigma of the detector's point spread, pixels; `kv`: tube voltage relative to nominal
    (below 1: a softer beam, attenuating more and delivering fewer photons)."""

    noise: float = 1.0
    blur_px: float = 0.7
    kv: float = 1.0

    def __post_init__(self) -> None:
        if not (0 < self.noise <= 20 and 0 <= self.blur_px <= 10 and 0.3 <= self.kv <= 1.5):
            raise ValueError(f"scanner quality out of range: {self}")

    @property
    def attenuation_scale(self) -> float:
        """Attenuation grows as the beam softens: mu ~ E^-1.5 in this energy range."""
        return float(self.kv**-1.5)

    @property
    def photon_scale(self) -> float:
        """Tube output grows roughly with kV squared."""
        return float(self.kv**2)


HEALTHY = ScannerQuality()


def acquire(
    a_high: Attenuation, a_low: Attenuation, quality: ScannerQuality, seed: int
) -> tuple[Channel, Channel]:
    """Calibrated uint16 (high, low) channels from noise-free attenuation maps (H, W)."""
    rng = np.random.default_rng(seed)
    out = []
    for attenuation, photons in ((a_high, PHOTONS_HIGH), (a_low, PHOTONS_LOW)):
        transmission = np.exp(-attenuation * np.float32(quality.attenuation_scale))
        if quality.blur_px > 0:
            transmission = cv2.GaussianBlur(transmission, (0, 0), quality.blur_px)
        mean = transmission * np.float32(AIR_LEVEL)
        n_photons = photons * quality.photon_scale
        sigma = quality.noise * np.sqrt(
            mean * np.float32(AIR_LEVEL / n_photons) + np.float32(ELECTRONIC_NOISE**2)
        )
        values = mean + sigma * rng.standard_normal(size=mean.shape, dtype=np.float32)
        out.append(np.clip(values + 0.5, 0, 65535).astype(np.uint16))
    return out[0], out[1]
