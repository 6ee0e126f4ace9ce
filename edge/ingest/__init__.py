"""Ingest: image files (PNG, JPEG, TIFF, DICOS DX) to Frames.

`edge.ingest.images.load_image` is the entry point; `edge.ingest.dicos` reads DICOS DX.
This module holds what both share: the size limits, the bounded file read and the guard
that keeps decoder libraries' warnings and exceptions from reaching callers raw. It
imports neither submodule, so both can import it.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

from edge.errors import BadInputError, UnsupportedImageError

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_PIXELS = 64_000_000

# warnings.catch_warnings swaps the process-wide filter list and is not thread-safe before
# Python 3.14: two ingest threads interleaving could leave one's filters installed for good.
# The lock serialises decoding across ingest threads, a few milliseconds per image.
_WARNINGS_LOCK = threading.RLock()


def read_limited(path: Path, max_bytes: int) -> bytes:
    """The whole file, refused before reading when missing, not a file, or over max_bytes."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise BadInputError(f"{path}: file not found") from None
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read file ({one_line(exc)})") from None
    if not path.is_file():
        raise BadInputError(f"{path}: not a regular file")
    if size > max_bytes:
        raise BadInputError(f"{path}: file too large ({size} bytes, limit {max_bytes})")
    try:
        with path.open("rb") as f:
            # What stat() saw and one byte more (asking for the limit would allocate it: 0.6 ms
            # per call at 256 MiB, against 0.14 for a 700 KB file); a file that grew since is
            # read on to one byte past the limit, which tells one over the limit from one that fits.
            data = f.read(size + 1)
            if len(data) > size:
                data += f.read(max_bytes + 1 - len(data))
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read file ({one_line(exc)})") from None
    if len(data) > max_bytes:
        raise BadInputError(f"{path}: file too large (over {max_bytes} bytes)")
    if not data:
        raise UnsupportedImageError(f"{path}: file is empty")
    return data


def check_pixel_count(source: object, height: int, width: int, max_pixels: int) -> None:
    """Refuse an image whose header declares more than max_pixels, before decoding it."""
    if height <= 0 or width <= 0:
        raise UnsupportedImageError(f"{source}: corrupt header (size {width}x{height} pixels)")
    if height * width > max_pixels:
        raise UnsupportedImageError(
            f"{source}: image too large ({width}x{height} = {width * height} pixels, "
            f"limit {max_pixels})"
        )


@contextlib.contextmanager
def captured_decoder_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Collect warnings raised by decoder libraries instead of letting them escape.

    Non-conformant but readable files (DICOS UIDs with leading zeros, odd TIFF tags) make
    pydicom and Pillow warn; callers log the collected list instead.
    """
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def one_line(exc: object, limit: int = 160) -> str:
    """An exception or warning message as one short line, for wrapping into an EdgeError."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
