"""A one-line progress bar on a terminal's stderr (nothing when stderr is not a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30


class ProgressBar:
    """Call with (stage, done, total); redraws at most 10 times a second (always for a new
    stage and its last step), ends the line when a stage completes."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._stage = ""
        self._start = time.monotonic()
        self._drawn = 0.0

    @classmethod
    def for_terminal(cls, stream: TextIO | None = None) -> ProgressBar | None:
        stream = stream or sys.stderr
        return cls(stream) if stream.isatty() else None

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        new_stage = stage != self._stage
        if new_stage:
            self._stage, self._start = stage, now
        if not new_stage and done < total and now - self._drawn < 0.1:
            return
        self._drawn = now
        filled = WIDTH * done // max(total, 1)
        elapsed = now - self._start
        eta = elapsed / done * (total - done) if done else 0.0
        line = (
            f"\r{stage:<10} [{'#' * filled}{'.' * (WIDTH - filled)}] {done}/{total}"
            f"  {elapsed:5.0f} s elapsed, {eta:4.0f} s left"
        )
        self.stream.write(line + ("\n" if done >= total else ""))
        self.stream.flush()
