"""Raw, uncalibrated detector output: what a scanner sends before flat-field correction.

A line-scan array has one detector element per column; each element has its own offset
(dark current) and gain per energy channel, a few are dead (no response) or hot (huge,
noisy dark current), and offsets and gains drift slowly over hours. `DetectorResponse`
holds one such array (seeded); `raw_frame` turns a calibrated frame into what that array
would have read; `dark_scan` and `air_scan` are the calibration scans.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.frames import AIR_LEVEL
from edge.sim.scene import ELECTRONIC_NOISE, PHOTONS_HIGH, PHOTONS_LOW

Channel = npt.NDArray[np.uint16]
Vector = npt.NDArray[np.float64]
CHANNELS = ("high", "low")
AIR_COUNTS = 40000.0  # raw counts above the offset in open air for a gain of 1
RAW_NOISE = 6.0  # read-out noise of the raw counts


@dataclass(frozen=True)
class DetectorResponse:
    """Per detector element (W,): offset counts and gain per channel, dead and hot elements."""

    offset: dict[str, Vector]
    gain: dict[str, Vector]
    dead: tuple[int, ...]
    hot: tuple[int, ...]
    offset_drift_per_h: float  # counts per hour, all elements alike
    gain_drift_per_h: dict[str, Vector]  # relative change per hour, per element

    @property
    def width(self) -> int:
        return int(self.offset["high"].size)

    def at(self, hours: float) -> tuple[dict[str, Vector], dict[str, Vector]]:
        """(offset, gain) per channel `hours` after the response was drawn."""
        offset = {c: v + self.offset_drift_per_h * hours for c, v in self.offset.items()}
        gain = {c: v * (1.0 + self.gain_drift_per_h[c] * hours) for c, v in self.gain.items()}
        return offset, gain


def detector_response(
    width: int,
    seed: int,
    *,
    gain_spread: float = 0.06,
    dead: int = 2,
    hot: int = 2,
    drift_per_h: float = 0.002,
) -> DetectorResponse:
    """A seeded detector array of `width` elements."""
    rng = np.random.default_rng(seed)
    bad = rng.choice(np.arange(2, width - 2), size=dead + hot, replace=False)
    dead_cols, hot_cols = (
        tuple(sorted(int(c) for c in bad[:dead])),
        tuple(sorted(int(c) for c in bad[dead:])),
    )
    offset, gain, drift = {}, {}, {}
    # Modules of 32 elements share an amplifier: a step pattern on top of element spread.
    modules = np.repeat(rng.normal(0, gain_spread / 2, size=width // 32 + 1), 32)[:width]
    for c in CHANNELS:
        offset[c] = rng.normal(1500.0, 150.0, size=width)
        offset[c][list(hot_cols)] += rng.uniform(12000, 18000, size=hot)
        gain[c] = 1.0 + modules + rng.normal(0, gain_spread, size=width)
        gain[c][list(dead_cols)] = rng.uniform(0.0, 0.03, size=dead)
        drift[c] = drift_per_h * (1.0 + np.sin(np.linspace(0, 3.0, width) + rng.uniform(0, 6)))
    return DetectorResponse(offset, gain, dead_cols, hot_cols, 0.5, drift)


def raw_frame(
    channels: dict[str, Channel], response: DetectorResponse, *, hours: float = 0.0, seed: int = 0
) -> dict[str, Channel]:
    """What the array reads for calibrated channels (H, W) uint16 (transmission x AIR_LEVEL)."""
    floats = {k: v.astype(np.float64) for k, v in channels.items()}
    return _read_out(floats, response, hours, np.random.default_rng(seed))


def _read_out(
    channels: dict[str, npt.NDArray[np.float64]],
    response: DetectorResponse,
    hours: float,
    rng: np.random.Generator,
) -> dict[str, Channel]:
    offset, gain = response.at(hours)
    noise = np.full(response.width, RAW_NOISE)
    noise[list(response.hot)] *= 8.0  # hot elements are noisy as well as high
    out = {}
    for name, values in channels.items():
        if values.shape[1] != response.width:
            raise ValueError(f"frame is {values.shape[1]} wide; the array has {response.width}")
        signal = values * (AIR_COUNTS / AIR_LEVEL) * gain[name][None, :]
        raw = offset[name][None, :] + signal + noise * rng.standard_normal(values.shape)
        out[name] = np.clip(raw + 0.5, 0, 65535).astype(np.uint16)
    return out


def _flat(
    height: int, width: int, level: float, rng: np.random.Generator
) -> dict[str, npt.NDArray[np.float64]]:
    """Flat frames at `level` of open air in calibrated units, with their photon noise."""
    out = {}
    for name, photons in (("high", PHOTONS_HIGH), ("low", PHOTONS_LOW)):
        mean = level * AIR_LEVEL
        sigma = np.sqrt(mean * AIR_LEVEL / photons + ELECTRONIC_NOISE**2)
        out[name] = mean + sigma * rng.standard_normal((height, width))
    return out


def dark_scan(
    response: DetectorResponse, height: int, *, hours: float = 0.0, seed: int = 0
) -> dict[str, Channel]:
    """Beam off: offsets, dark current and read-out noise only."""
    rng = np.random.default_rng(seed)
    zeros = {c: np.zeros((height, response.width)) for c in CHANNELS}
    return _read_out(zeros, response, hours, rng)


def air_scan(
    response: DetectorResponse,
    height: int,
    *,
    hours: float = 0.0,
    seed: int = 0,
    level: float = 1.0,
) -> dict[str, Channel]:
    """Beam on, empty tunnel; `level` well above 1 overdrives the tube (a saturated scan)."""
    rng = np.random.default_rng(seed)
    return _read_out(_flat(height, response.width, level, rng), response, hours, rng)
