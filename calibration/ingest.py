"""The service's side: raw frames corrected with the active profile as they arrive.

The profile is re-read when a newer one appears (a calibration while the service runs
takes effect on the next frame). Frames that carry no raw channels (8-bit pseudo-colour
images) pass untouched; a frame the profile cannot correct (another width) passes
uncorrected with the reason in its metadata, and an error in the log.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import cv2
import numpy as np

from calibration import profile as profiles
from calibration.errors import CalibrationInputError
from calibration.materials import MaterialCurves
from edge.frames import Frame

logger = logging.getLogger(__name__)


class FrameCalibration:
    """Applies DATA/calibration's active profile; `keep_raw`: raw frames kept as
    DATA/calibration/raw/<frame id>.tiff (two pages: high, low)."""

    def __init__(self, data_dir: Path, *, keep_raw: bool = False) -> None:
        self.data_dir = Path(data_dir)
        self.keep_raw = keep_raw
        self._lock = threading.Lock()
        self._profile: profiles.Profile | None = None

    def _current(self) -> profiles.Profile | None:
        found = profiles.versions(self.data_dir)
        with self._lock:
            if found and (self._profile is None or self._profile.version != found[-1]):
                try:
                    self._profile = profiles.load(self.data_dir, found[-1])
                    logger.info("calibration profile %s active", self._profile.name)
                except CalibrationInputError as exc:
                    logger.error("calibration profile not loaded: %s", exc.message)
            return self._profile

    def material_curves(self) -> tuple[str, MaterialCurves] | None:
        """The active profile's name and its fitted material curves (from step-wedge scans),
        or None when no profile or no curves: the material view then keeps the fixed
        ratio thresholds of edge.pseudocolor."""
        current = self._current()
        if current is None or current.curves is None:
            return None
        return current.name, current.curves

    def apply(self, frame: Frame) -> Frame:
        """The corrected frame (a new Frame), or `frame` itself when there is nothing to do."""
        if frame.high is None:
            return frame
        current = self._current()
        if current is None:
            return frame
        channels = {"high": frame.high}
        if frame.low is not None:
            channels["low"] = frame.low
        try:
            if set(current.flatfield.channels) != set(channels):
                raise CalibrationInputError(
                    f"frame has channels {', '.join(channels)}; profile {current.name} "
                    f"corrects {', '.join(current.flatfield.channels)}"
                )
            corrected = current.flatfield.correct(channels)
        except CalibrationInputError as exc:
            logger.error("frame not calibrated: %s", exc.message)
            meta = {**frame.meta, "calibration": {"profile": None, "reason": exc.message}}
            return Frame(frame.high, frame.low, frame.rgb, meta)
        meta = {**frame.meta, "calibration": {"profile": current.name}}
        return Frame(corrected["high"], corrected.get("low"), None, meta)

    def keep(self, frame_id: str, raw: Frame) -> Path | None:
        """Write the raw frame next to its corrected one, when configured and raw."""
        if not self.keep_raw or raw.high is None:
            return None
        folder = profiles.calibration_dir(self.data_dir) / "raw"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{frame_id}.tiff"
        # Written under a dot name, then renamed: retention (edge/store/raw_frames.py)
        # never sees, counts or deletes a half-written raw frame.
        tmp = folder / f".{frame_id}.tmp.tiff"
        pages = [raw.high] + ([raw.low] if raw.low is not None else [])
        try:
            if not cv2.imwritemulti(str(tmp), [np.ascontiguousarray(p) for p in pages]):
                raise OSError("the TIFF encoder refused the frame")
            os.replace(tmp, path)
        except (OSError, cv2.error) as exc:
            logger.error("raw frame %s not kept: cannot write %s (%s)", frame_id, path, exc)
            tmp.unlink(missing_ok=True)
            return None
        return path
