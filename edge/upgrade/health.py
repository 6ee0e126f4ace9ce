"""The health check of a newly activated model: load it in its own process, as the service
does, and screen a known frame. A model that cannot is rolled back automatically."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.errors import EdgeError
from edge.frames import Frame, ScreeningState

KNOWN_FRAME_SIZE = (256, 320)  # (H, W) pixels


# Returns None when the model directory is healthy, else why not.
HealthCheck = Callable[[Path], str | None]


def known_frame() -> Frame:
    """An empty tunnel with one steel bar: deterministic, and in every representation."""
    from edge.pseudocolor import render_pseudocolor

    height, width = KNOWN_FRAME_SIZE
    high = np.full((height, width), 60000, np.uint16)
    low = np.full((height, width), 58000, np.uint16)
    high[100:140, 60:260] = 9000
    low[100:140, 60:260] = 2500
    return Frame(high=high, low=low, rgb=render_pseudocolor(high, low))


def check_model(
    model_dir: Path, *, deadline_s: float = 30.0, providers: list[str] | None = None
) -> str | None:
    """Load the model in a child process and screen the known frame; None, or the reason."""
    from edge.detector.isolated import IsolatedDetector

    detector = IsolatedDetector(model_dir, deadline_s=deadline_s, providers=providers)
    try:
        detector.start()
        result = detector.screen(known_frame())
    except EdgeError as exc:
        return exc.message
    finally:
        detector.close()
    if result.state != ScreeningState.SCREENED:
        return f"the model could not screen a test frame: {result.reason}"
    return None
