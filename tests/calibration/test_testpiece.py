from __future__ import annotations

import numpy as np
import pytest

from calibration.errors import CalibrationInputError
from calibration.testpiece import PassLevels, read_test_piece
from edge.sim.pieces import render_test_piece
from edge.sim.quality import ScannerQuality

# What the healthy simulated scanner shows of the piece (calibration/layout.py): each
# figure's next element has about half the contrast and is below the Rose limit.
HEALTHY_LIMITS = (0.18, 17.0, 1.6, 0.3)


def limits(quality: ScannerQuality, seed: int) -> tuple[float | None, ...]:
    scan = render_test_piece((24 + 5 * (seed % 3), 14 + 3 * (seed % 3)), quality=quality, seed=seed)
    r = read_test_piece(scan.high)
    assert r.origin == scan.origin
    return r.thinnest_wire_mm, r.thickest_steel_mm, r.finest_grating_mm, r.thinnest_organic_mm


@pytest.mark.parametrize("seed", range(6))
def test_a_healthy_scanner_shows_exactly_the_simulated_limits(seed: int) -> None:
    assert limits(ScannerQuality(), seed) == HEALTHY_LIMITS


# degradation, the steps that must fail, the steps that must still pass (a noisier
# scanner may also lose the wire behind the thickest steel: noise-limited too)
DEGRADED = [
    (ScannerQuality(noise=3.0), {"wire", "organic"}, {"resolution"}),
    (ScannerQuality(blur_px=1.6), {"resolution"}, {"organic"}),
    (ScannerQuality(kv=0.8), {"penetration"}, {"wire", "resolution", "organic"}),
]


@pytest.mark.parametrize(("quality", "failing", "passing"), DEGRADED, ids=["noise", "blur", "kv"])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_degraded_scanner_fails_at_the_right_step(
    quality: ScannerQuality, failing: set[str], passing: set[str], seed: int
) -> None:
    scan = render_test_piece((24 + 5 * seed, 14 + 3 * seed), quality=quality, seed=seed)
    reading = read_test_piece(scan.high)
    assert not reading.passed
    failed = {step for step, ok in reading.steps.items() if not ok}
    assert failing <= failed and not passing & failed
    assert len(reading.failures(PassLevels())) == len(failed)


def test_pass_levels_decide() -> None:
    scan = render_test_piece(seed=4)
    assert read_test_piece(scan.high).passed
    strict = PassLevels(max_wire_mm=0.1)
    reading = read_test_piece(scan.high, strict)
    assert reading.steps == {
        "wire": False,
        "penetration": True,
        "resolution": True,
        "organic": True,
    }
    assert reading.failures(strict) == ["thinnest wire seen 0.18 mm, needs 0.1 mm or thinner"]


def test_a_scan_without_the_piece_is_refused() -> None:
    empty = np.full((240, 400), 60000, np.uint16)
    with pytest.raises(CalibrationInputError, match="no test piece found"):
        read_test_piece(empty)
