"""Errors of the upgrade engine: every refusal says, in plain words, what was wrong.

A refusal is a check that ran and failed (exit status 1, HTTP 422); a file that is not
there or cannot be read is bad input (exit status 2, HTTP 400).
"""

from __future__ import annotations

from edge.errors import BadInputError, EdgeError


class UpgradeRefusedError(EdgeError):
    """A bundle (or rollback) refused by a check; the active model is untouched."""

    http_status = 422
    exit_status = 1

    def __init__(self, message: str, step: str = "verify") -> None:
        super().__init__(message)
        self.step = step


class KeyFileError(BadInputError):
    """A minisign key file that cannot be used as given (format, encryption)."""


class SignatureError(UpgradeRefusedError):
    """A signature that does not verify, or was made with a key the device does not trust."""


class UpgradeBusyError(EdgeError):
    """Another upgrade or rollback is in progress on this data directory."""

    http_status = 409
    exit_status = 1
