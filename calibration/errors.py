"""Calibration errors: bad scans are bad input (exit 2), a failed check is a check (exit 1)."""

from __future__ import annotations

from edge.errors import BadInputError, EdgeError


class CalibrationInputError(BadInputError):
    """Scans that cannot calibrate the scanner as given; the message says what to rescan."""


class CalibrationCheckFailed(EdgeError):
    """A calibration check that ran and failed (a test piece below its pass levels)."""

    http_status = 422
    exit_status = 1
