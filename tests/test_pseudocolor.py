"""The renderer's table lookups give the pixels of the colour and grey tables."""

from __future__ import annotations

import numpy as np

import edge.pseudocolor as pc
from edge.sim.scene import simulate_bag


def test_rendering_is_the_table_lookup() -> None:
    for seed in (1, 2, 3):
        bag = simulate_bag(seed)
        a_high = pc.attenuation(bag.high)
        ai = pc._a_index(a_high)
        ratio = pc.material_ratio(a_high, pc.attenuation(bag.low))
        scale = np.float32(pc._R_BINS / (pc._R_MAX - pc._R_MIN))
        ri = np.clip((ratio - np.float32(pc._R_MIN)) * scale, 0, pc._R_BINS - 1).astype(np.intp)
        np.testing.assert_array_equal(
            pc.render_pseudocolor(bag.high, bag.low), pc._COLOUR_TABLE[ai, ri]
        )
        np.testing.assert_array_equal(pc.render_pseudocolor(bag.high), pc._GREY_TABLE[ai])
