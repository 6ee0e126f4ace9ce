"""Fixtures of the upgrade tests (defined in device.py, beside their helpers)."""

from __future__ import annotations

from .device import device

__all__ = ["device"]
