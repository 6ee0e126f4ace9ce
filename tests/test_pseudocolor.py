"""The renderer's table lookups give the pixels of the colour and grey tables."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

import edge.pseudocolor as pc
from edge.sim.scene import simulate_bag


def _random_planes(seed: int) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint16]]:
    """Every corner of the value range: zeros, saturation, the low channel at its floor."""
    rng = np.random.default_rng(seed)
    high = rng.integers(0, 65536, (64, 96), dtype=np.uint16)
    low = rng.integers(0, 65536, (64, 96), dtype=np.uint16)
    high[0], low[1], high[2], low[3] = 0, 0, 65535, 65535
    return high, low


def test_rendering_is_the_table_lookup() -> None:
    bags = [simulate_bag(seed) for seed in (1, 2, 3)]
    planes = [(bag.high, bag.low) for bag in bags] + [_random_planes(s) for s in (4, 5)]
    for high, low in planes:
        a_high = pc.attenuation(high)
        ai = pc._a_index(a_high)
        ratio = pc.material_ratio(a_high, pc.attenuation(low))
        scale = np.float32(pc._R_BINS / (pc._R_MAX - pc._R_MIN))
        ri = np.clip((ratio - np.float32(pc._R_MIN)) * scale, 0, pc._R_BINS - 1).astype(np.intp)
        np.testing.assert_array_equal(pc.render_pseudocolor(high, low), pc._COLOUR_TABLE[ai, ri])
        np.testing.assert_array_equal(pc.render_pseudocolor(high), pc._GREY_TABLE[ai])
