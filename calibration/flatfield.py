"""Flat-field correction of a line-scan dual-energy array: the pure core.

One detector element per column, so the maps are per element, (W,) per channel, and a
profile corrects frames of any height: `I_corr = (I - dark) / (air - dark)`, scaled so
open air reads AIR_LEVEL. Dead elements (no response to the beam) and hot elements
(dark current far above the others, or very noisy) form the bad-pixel map; their columns
are interpolated from the nearest good neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from calibration.errors import CalibrationInputError
from edge.frames import AIR_LEVEL

Channel = npt.NDArray[np.uint16]
Vector = npt.NDArray[np.float32]
FULL_SCALE = 65535
MIN_SCANS = 3
DARK_MAX_COUNTS = 0.2 * FULL_SCALE  # a dark scan reads offsets only, well below this
AIR_MIN_SIGNAL = 0.1 * FULL_SCALE  # an air scan reads at least this far above the dark
MAX_SATURATED = 0.01  # share of an air scan's pixels at full scale that refuses it
DEAD_BELOW = 0.5  # response below this share of the median response: dead
HOT_SIGMAS = 10.0  # dark level this many robust sigmas above the median: hot
NOISY_FACTOR = 4.0  # temporal noise this many times the median: bad


@dataclass(frozen=True)
class Scan:
    """One calibration scan file: its name (for messages) and raw channels (H, W) uint16."""

    name: str
    channels: dict[str, Channel]


@dataclass(frozen=True)
class FlatField:
    """Per-element maps (W,) float32 per channel: `offset` (dark counts) and `response`
    (air minus dark counts); `bad` (W,) bool, the elements interpolated."""

    offset: dict[str, Vector]
    response: dict[str, Vector]
    bad: npt.NDArray[np.bool_]

    @property
    def width(self) -> int:
        return int(self.bad.size)

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.offset)

    def correct(self, channels: dict[str, Channel]) -> dict[str, Channel]:
        """Calibrated uint16 channels (H, W) from raw ones (H, W), bad columns interpolated."""
        missing = set(self.channels) - set(channels)
        if missing:
            raise CalibrationInputError(
                f"frame lacks channel(s) {', '.join(sorted(missing))} the profile corrects"
            )
        out = {}
        for name in self.channels:
            raw = channels[name]
            if raw.ndim != 2 or raw.shape[1] != self.width:
                raise CalibrationInputError(
                    f"frame is {raw.shape[-1]} pixels wide; the calibration profile is for "
                    f"{self.width} detector pixels"
                )
            t = (raw.astype(np.float32) - self.offset[name]) / self.response[name]
            out[name] = _to_uint16(self._interpolate(t) * np.float32(AIR_LEVEL))
        return out

    def _interpolate(self, values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if not self.bad.any():
            return values
        good = np.flatnonzero(~self.bad)
        bad = np.flatnonzero(self.bad)
        right = np.clip(np.searchsorted(good, bad), 0, good.size - 1)
        left = np.clip(right - 1, 0, good.size - 1)
        lx, rx = good[left], good[right]
        span = np.maximum(rx - lx, 1)
        w = np.where(rx == lx, 0.0, (bad - lx) / span).astype(np.float32)
        values[:, bad] = values[:, lx] * (1 - w) + values[:, rx] * w
        return values


def _to_uint16(values: npt.NDArray[np.float32]) -> Channel:
    out: Channel = np.clip(values + 0.5, 0, FULL_SCALE).astype(np.uint16)
    return out


def nonuniformity(channel: npt.NDArray[np.generic]) -> float:
    """RMS / mean of a flat frame (H, W): 0 for a perfectly uniform one."""
    values = channel.astype(np.float64)
    return float(values.std() / max(values.mean(), 1e-9))


def fixed_pattern(channel: npt.NDArray[np.generic]) -> float:
    """RMS / mean of a flat frame's column means: its spatial non-uniformity alone."""
    columns = channel.astype(np.float64).mean(axis=0)
    return float(columns.std() / max(columns.mean(), 1e-9))


def check_scans(dark: Sequence[Scan], air: Sequence[Scan]) -> tuple[str, ...]:
    """Refuse scans that cannot calibrate; returns the channel names they share."""
    for kind, scans in (("dark", dark), ("air", air)):
        if len(scans) < MIN_SCANS:
            raise CalibrationInputError(
                f"need at least {MIN_SCANS} {kind} scans, got {len(scans)}: scan more"
            )
    first = dark[0]
    channels = tuple(first.channels)
    width = next(iter(first.channels.values())).shape[1]
    for kind, scans in (("dark", dark), ("air", air)):
        for scan in scans:
            if tuple(scan.channels) != channels:
                raise CalibrationInputError(
                    f"{kind} scan {scan.name} has channels {', '.join(scan.channels)}; "
                    f"{first.name} has {', '.join(channels)}: every scan must come from "
                    "the same scanner mode"
                )
            for name, values in scan.channels.items():
                if values.dtype != np.uint16 or values.ndim != 2:
                    raise CalibrationInputError(
                        f"{kind} scan {scan.name}: expected raw (H, W) uint16 channels, "
                        f"got {name} {values.shape} {values.dtype}"
                    )
                if values.shape[1] != width:
                    raise CalibrationInputError(
                        f"{kind} scan {scan.name} is {values.shape[1]} pixels wide; "
                        f"{first.name} is {width}: every scan must come from the same array"
                    )
    dark_level = float(np.median([_median(s) for s in dark]))
    for scan in dark:
        if _median(scan) > DARK_MAX_COUNTS:
            raise CalibrationInputError(
                f"dark scan {scan.name} reads {_median(scan):.0f} counts (median): that is "
                "an air scan (beam on); dark scans are taken with the beam off"
            )
    for scan in air:
        if _median(scan) - dark_level < AIR_MIN_SIGNAL:
            raise CalibrationInputError(
                f"air scan {scan.name} reads {_median(scan):.0f} counts (median), no more than "
                f"the dark scans ({dark_level:.0f}): that is a dark scan (beam off); air "
                "scans are taken with the beam on and the tunnel empty"
            )
        for name, values in scan.channels.items():
            saturated = float((values >= FULL_SCALE).mean())
            if saturated > MAX_SATURATED:
                raise CalibrationInputError(
                    f"air scan {scan.name} is saturated: {saturated:.1%} of its {name} "
                    f"pixels read {FULL_SCALE}; lower the tube current and scan again"
                )
    return channels


def _median(scan: Scan) -> float:
    return float(np.median(scan.channels[next(iter(scan.channels))]))


def build_flatfield(dark: Sequence[Scan], air: Sequence[Scan]) -> FlatField:
    """Maps from several dark and air scans (checked first: CalibrationInputError)."""
    channels = check_scans(dark, air)
    offset, response = {}, {}
    bad = np.zeros(next(iter(dark[0].channels.values())).shape[1], bool)
    for name in channels:
        dark_cols = _column_means(dark, name)
        air_cols = _column_means(air, name)
        noise = np.median([s.channels[name].astype(np.float32).std(axis=0) for s in dark], 0)
        resp = air_cols - dark_cols
        med_resp = float(np.median(resp))
        med_dark = float(np.median(dark_cols))
        spread = 1.4826 * float(np.median(np.abs(dark_cols - med_dark))) + 1.0
        bad |= resp < DEAD_BELOW * med_resp
        bad |= dark_cols > med_dark + HOT_SIGMAS * spread
        bad |= noise > NOISY_FACTOR * float(np.median(noise))
        offset[name] = dark_cols.astype(np.float32)
        response[name] = np.maximum(resp, 1.0).astype(np.float32)
    return FlatField(offset, response, bad)


def _column_means(scans: Sequence[Scan], name: str) -> npt.NDArray[np.float64]:
    sums = sum(s.channels[name].astype(np.float64).sum(axis=0) for s in scans)
    rows = sum(s.channels[name].shape[0] for s in scans)
    means: npt.NDArray[np.float64] = np.asarray(sums) / rows
    return means


@dataclass(frozen=True)
class FlatFieldReport:
    """Figures per channel: non-uniformity (RMS / mean) of an air scan before and after."""

    before: dict[str, float]  # raw air scan
    after: dict[str, float]  # corrected, by a profile built without that scan
    fixed_pattern_before: dict[str, float]
    fixed_pattern_after: dict[str, float]
    bad_pixels: list[int]


def assess(dark: Sequence[Scan], air: Sequence[Scan], field: FlatField) -> FlatFieldReport:
    """Leave-one-out: each air scan corrected by maps built from the others, so the figure
    is what a new scan sees, not the maps' fit to their own data."""
    before: dict[str, list[float]] = {c: [] for c in field.channels}
    after: dict[str, list[float]] = {c: [] for c in field.channels}
    fp_before: dict[str, list[float]] = {c: [] for c in field.channels}
    fp_after: dict[str, list[float]] = {c: [] for c in field.channels}
    for i, held in enumerate(air):
        others = [s for j, s in enumerate(air) if j != i]
        response = {c: _column_means(others, c) - field.offset[c] for c in field.channels}
        partial = FlatField(
            field.offset,
            {c: np.maximum(r, 1.0).astype(np.float32) for c, r in response.items()},
            field.bad,
        )
        corrected = partial.correct(held.channels)
        for c in field.channels:
            before[c].append(nonuniformity(held.channels[c]))
            after[c].append(nonuniformity(corrected[c]))
            fp_before[c].append(fixed_pattern(held.channels[c]))
            fp_after[c].append(fixed_pattern(corrected[c]))

    def mean(d: dict[str, list[float]]) -> dict[str, float]:
        return {c: round(float(np.mean(v)), 5) for c, v in d.items()}

    return FlatFieldReport(
        mean(before),
        mean(after),
        mean(fp_before),
        mean(fp_after),
        [int(i) for i in np.flatnonzero(field.bad)],
    )


def drift(old: FlatField, new: FlatField) -> dict[str, dict[str, float]]:
    """Per channel: median relative response change and median offset change (counts)."""
    if old.width != new.width or old.channels != new.channels:
        return {}
    good = ~(old.bad | new.bad)
    out = {}
    for c in new.channels:
        rel = new.response[c][good] / old.response[c][good] - 1.0
        out[c] = {
            "response_change": round(float(np.median(rel)), 5),
            "response_change_max": round(float(np.abs(rel).max()), 5),
            "offset_change_counts": round(float(np.median(new.offset[c] - old.offset[c])), 2),
        }
    return out
