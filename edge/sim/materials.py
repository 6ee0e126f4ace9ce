"""Linear attenuation coefficients of the simulated materials at two effective energies.

Values are mu (1/cm) at about 60 keV ("low") and 100 keV ("high"), from tabulated mass
attenuation coefficients times density (NIST XCOM order of magnitude). What matters for
the physics is that organic matter attenuates both energies alike (ratio ~1.2) while
high-Z metals attenuate the low energy much more (ratio > 3).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Material:
    name: str
    mu_low: float  # 1/cm at the low effective energy
    mu_high: float  # 1/cm at the high effective energy

    @property
    def ratio(self) -> float:
        return self.mu_low / self.mu_high


MATERIALS: dict[str, Material] = {
    m.name: m
    for m in (
        Material("textile", 0.05, 0.042),
        Material("paper", 0.16, 0.134),
        Material("wood", 0.12, 0.10),
        Material("plastic", 0.21, 0.18),
        Material("rubber", 0.26, 0.21),
        Material("water", 0.206, 0.171),
        Material("glass", 0.79, 0.43),
        Material("pcb", 0.55, 0.33),
        Material("aluminium", 0.75, 0.46),
        Material("battery", 2.1, 0.72),
        Material("steel", 9.48, 2.93),
        Material("copper", 14.2, 4.10),
        Material("brass", 13.0, 3.80),
    )
}

# Millimetres per pixel: a 1,000-pixel detector line spans an 80 cm tunnel.
PIXEL_MM = 0.8
PIXEL_CM = PIXEL_MM / 10.0
