from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from calibration.errors import CalibrationInputError
from calibration.flatfield import Scan, assess, build_flatfield, drift
from edge.frames import AIR_LEVEL
from edge.sim.pieces import render_wedges
from edge.sim.raw import AIR_COUNTS, air_scan, dark_scan, detector_response, raw_frame

WIDTH, ROWS = 300, 100
RESPONSE = detector_response(WIDTH, seed=7)


def darks(n: int = 4, **kw: float) -> list[Scan]:
    return [Scan(f"dark{i}", dark_scan(RESPONSE, ROWS, seed=i, **kw)) for i in range(n)]


def airs(n: int = 4, **kw: float) -> list[Scan]:
    return [Scan(f"air{i}", air_scan(RESPONSE, ROWS, seed=20 + i, **kw)) for i in range(n)]


def test_maps_recover_the_simulated_offsets_gains_and_bad_pixels() -> None:
    field = build_flatfield(darks(), airs())
    bad = set(RESPONSE.dead) | set(RESPONSE.hot)
    assert set(np.flatnonzero(field.bad).tolist()) == bad
    good = ~field.bad
    for c in ("high", "low"):
        assert np.abs(field.offset[c] - RESPONSE.offset[c])[good].max() < 3.0  # counts
        expected = AIR_COUNTS * RESPONSE.gain[c]
        assert np.abs(field.response[c] / expected - 1)[good].max() < 0.005


def test_a_corrected_raw_frame_matches_the_calibrated_one() -> None:
    field = build_flatfield(darks(), airs())
    scan = render_wedges(frame=(220, WIDTH), seed=3)
    truth = {"high": scan.high, "low": scan.low}
    corrected = field.correct(raw_frame(truth, RESPONSE, seed=9))
    for c in ("high", "low"):
        error = np.abs(corrected[c].astype(float) - truth[c].astype(float)) / AIR_LEVEL
        assert np.median(error[:, ~field.bad]) < 0.001
        # Interpolated columns follow their neighbours: close where the scene is smooth.
        assert np.median(error[:, field.bad]) < 0.01


def test_residual_nonuniformity_meets_the_target() -> None:
    dark, air = darks(), airs()
    report = assess(dark, air, build_flatfield(dark, air))
    for c in ("high", "low"):
        assert report.before[c] > 0.05
        assert report.after[c] <= 0.01
        assert report.fixed_pattern_after[c] < 0.002
    assert len(report.bad_pixels) == 4


def test_drift_shows_and_a_new_profile_corrects_it() -> None:
    old = build_flatfield(darks(), airs())
    later_dark, later_air = darks(hours=48), airs(hours=48)
    new = build_flatfield(later_dark, later_air)
    moved = drift(old, new)
    assert moved["low"]["response_change"] > 0.05
    assert moved["high"]["offset_change_counts"] == pytest.approx(24.0, abs=3)
    stale = old.correct(later_air[0].channels)["low"].astype(float)
    fresh = new.correct(later_air[0].channels)["low"].astype(float)
    assert abs(fresh.mean() / AIR_LEVEL - 1) < 0.002 < abs(stale.mean() / AIR_LEVEL - 1)


def _narrow(scans: list[Scan]) -> list[Scan]:
    return [Scan(s.name, {k: v[:, :-10] for k, v in s.channels.items()}) for s in scans]


def _high_only(scans: list[Scan]) -> list[Scan]:
    return [Scan(s.name, {"high": s.channels["high"]}) for s in scans]


BAD_INPUT: list[tuple[str, Callable[[], tuple[list[Scan], list[Scan]]], str]] = [
    ("too few dark", lambda: (darks(2), airs()), "need at least 3 dark scans, got 2"),
    ("too few air", lambda: (darks(), airs(1)), "need at least 3 air scans, got 1"),
    ("wrong size", lambda: (darks(), airs()[:3] + _narrow(airs()[3:])), "290 pixels wide"),
    (
        "channels",
        lambda: (darks(), airs()[:2] + _high_only(airs()[2:])),
        "air scan air2 has channels high; dark0 has high, low",
    ),
    ("dark as air", lambda: (darks(), airs(3) + darks(1)), "air scan dark0 reads"),
    ("air as dark", lambda: (darks(3) + airs(1), airs()), "dark scan air0 reads"),
    ("saturated", lambda: (darks(), airs(level=1.5)), "air scan air0 is saturated"),
]


@pytest.mark.parametrize(("case", "scans", "message"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_scans_are_refused_with_a_clear_message(
    case: str, scans: Callable[[], tuple[list[Scan], list[Scan]]], message: str
) -> None:
    dark, air = scans()
    with pytest.raises(CalibrationInputError) as caught:
        build_flatfield(dark, air)
    assert message in caught.value.message


def test_a_frame_of_another_width_is_refused() -> None:
    field = build_flatfield(darks(), airs())
    with pytest.raises(CalibrationInputError, match="310 pixels wide; .* 300 detector pixels"):
        field.correct({"high": np.zeros((5, 310), np.uint16), "low": np.zeros((5, 310), np.uint16)})
