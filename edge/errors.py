"""The project's error hierarchy: every error carries a message a technician can act on."""

from __future__ import annotations


class EdgeError(Exception):
    """Base of every error the appliance raises on purpose.

    `http_status` is what the API answers with; `exit_status` is what the CLI exits with
    (2 bad input or usage, 1 a check that ran and failed).
    """

    http_status = 500
    exit_status = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadInputError(EdgeError):
    """Outside data (a file, an upload, bytes) that cannot be used as given."""

    http_status = 400


class UnsupportedImageError(BadInputError):
    """An image file that is unreadable or of a kind the appliance cannot screen."""

    http_status = 415


class ManifestError(EdgeError):
    """A model directory whose manifest or graph cannot be used; the message names the field."""

    http_status = 422


class DetectorError(EdgeError):
    """Inference failed for a frame (crash, time-out, bad output); the frame is NOT SCREENED."""

    http_status = 503
