"""The progress bar draws on a terminal only, and ends its line when a stage completes."""

from __future__ import annotations

import io

from edge.validation.progress import ProgressBar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_drawn_on_a_terminal_only() -> None:
    assert ProgressBar.for_terminal(io.StringIO()) is None
    screen = Terminal()
    bar = ProgressBar.for_terminal(screen)
    assert bar is not None
    bar("model", 1, 4)
    bar("model", 2, 4)  # within 0.1 s of the last draw: skipped
    bar("model", 4, 4)  # the last step always draws, and ends the line
    text = screen.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "[" + "#" * 7 in text and "1/4" in text and "4/4" in text
    bar("baseline", 1, 2)
    assert screen.getvalue().rsplit("\n", 1)[-1].startswith("\rbaseline   [###")
