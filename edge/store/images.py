"""Image files of the log: lossless PNG encoding, durable writes, start-up scan, read-back.

Layout under the data directory: `images/YYYY/MM/DD/<frame-id>_high.png` and `_low.png`
(16-bit greyscale) for dual-energy channels, `<frame-id>.png` (8-bit RGB) for pseudo-colour
frames. Every file is written to a hidden temporary name in its final directory, fsync'd,
renamed, and the directory fsync'd, so a crash leaves either the whole file or a temp file
that start-up removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge.errors import BadInputError
from edge.frames import Frame
from edge.ingest.images import HIGH_SUFFIX, LOW_SUFFIX
from edge.store.errors import ImageMissingError, StoreError

IMAGES_DIRNAME = "images"
TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"
# zlib level 0 (stored): PNG encoding then costs a few ms per 1024x768 channel where
# deflate costs 40-110 ms, and the log must keep up with the scanner on a CPU it shares
# with inference; noisy 16-bit X-ray data deflates by only ~20% anyway. Levels 1-9 trade
# that time for space, with the cheap SUB filter rather than libpng's adaptive search.
DEFAULT_PNG_LEVEL = 0

CHANNEL_SUFFIXES = {"high": HIGH_SUFFIX, "low": LOW_SUFFIX, "rgb": ""}


@dataclass(frozen=True)
class EncodedFrame:
    """A frame's PNG files in memory: `files` maps channel name -> PNG bytes."""

    files: dict[str, bytes]
    width: int
    height: int
    sha256: str

    @property
    def channels(self) -> list[str]:
        return list(self.files)

    @property
    def nbytes(self) -> int:
        return sum(len(data) for data in self.files.values())


def pixel_sha256(frame: Frame) -> str:
    """SHA-256 of the pixel bytes as CONTRACT.md section 1 sends them: channels planar
    (high, then low), rows top to bottom, uint16 little-endian; RGB frames add their
    (H, W, 3) uint8 bytes."""
    digest = hashlib.sha256()
    for channel in (frame.high, frame.low):
        if channel is not None:
            digest.update(np.ascontiguousarray(channel, dtype="<u2").tobytes())
    if frame.rgb is not None:
        digest.update(np.ascontiguousarray(frame.rgb).tobytes())
    return digest.hexdigest()


def png_params(level: int) -> list[int]:
    """cv2.imencode parameters for a zlib `level` 0-9."""
    if not 0 <= level <= 9:
        raise BadInputError(f"png level: expected 0-9, got {level}")
    params = [cv2.IMWRITE_PNG_COMPRESSION, level]
    if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.10
        chosen = cv2.IMWRITE_PNG_FILTER_NONE if level == 0 else cv2.IMWRITE_PNG_FILTER_SUB
        params += [cv2.IMWRITE_PNG_FILTER, chosen]
    return params


def encode_frame(frame: Frame, level: int = DEFAULT_PNG_LEVEL) -> EncodedFrame:
    """PNG-encode each channel the frame has (no I/O; safe outside the writer thread)."""
    params = png_params(level)
    files: dict[str, bytes] = {}
    arrays: dict[str, npt.NDArray[np.generic] | None] = {
        "high": frame.high,
        "low": frame.low,
        "rgb": None if frame.rgb is None else cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR),
    }
    for name, array in arrays.items():
        if array is None:
            continue
        ok, buffer = cv2.imencode(".png", np.ascontiguousarray(array), params)
        if not ok:
            raise StoreError(f"frame: PNG encoding of the {name} channel failed")
        files[name] = buffer.tobytes()
    height, width = frame.shape
    return EncodedFrame(files, width, height, pixel_sha256(frame))


def day_dir(received: datetime) -> str:
    """`images/YYYY/MM/DD` for a UTC time, relative to the data directory."""
    return f"{IMAGES_DIRNAME}/{received:%Y/%m/%d}"


def relative_paths(frame_id: str, received: datetime, channels: Iterable[str]) -> list[str]:
    """The files' paths relative to the data directory, in channel order."""
    directory = day_dir(received)
    return [f"{directory}/{frame_id}{CHANNEL_SUFFIXES[name]}.png" for name in channels]


def is_temp_name(name: str) -> bool:
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


def fsync_dir(directory: Path) -> None:
    """Make a directory's entries (created, renamed, removed names) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(directory: Path, known: set[Path]) -> None:
    """Create a directory and its missing parents, fsyncing each parent that gained an entry.

    `known` holds directories this process made or found, so the common case is one
    stat (still made: someone may have removed an empty day directory by hand).
    """
    if directory in known and directory.is_dir():
        return
    missing: list[Path] = []
    probe = directory
    while not probe.is_dir():
        missing.append(probe)
        probe = probe.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir()
        fsync_dir(path.parent)
    known.add(directory)


def write_fsynced(path: Path, data: bytes) -> None:
    """Create `path` (it must not exist), write all of `data` and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durable(files: list[tuple[Path, bytes]]) -> None:
    """Write files of one directory so that each is all there or not there after a crash.

    All are written to temp names and fsync'd, then renamed, then the directory is
    fsync'd once. On an error nothing is left: temp files and files renamed so far go.
    """
    if not files:
        return
    directory = files[0][0].parent
    if any(path.parent != directory for path, _ in files):
        raise ValueError("write_durable: expected files of one directory")
    temps: list[Path] = []
    renamed: list[Path] = []
    try:
        for path, data in files:
            temp = path.with_name(f"{TEMP_PREFIX}{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
            temps.append(temp)  # listed first: a failed write still gets cleaned up
            write_fsynced(temp, data)
        for temp, (path, _) in zip(temps, files, strict=True):
            os.replace(temp, path)
            renamed.append(path)
        fsync_dir(directory)
    except BaseException:
        for leftover in [*temps[len(renamed) :], *renamed]:
            remove_quietly(leftover)
        raise


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def remove_files(paths: Iterable[Path]) -> None:
    """Unlink files (missing ones are fine) and fsync the directories they were in."""
    directories: set[Path] = set()
    for path in paths:
        remove_quietly(path)
        directories.add(path.parent)
    for directory in directories:
        if directory.is_dir():
            fsync_dir(directory)


def prune_empty_dirs(directories: Iterable[Path], images_dir: Path, known: set[Path]) -> None:
    """Remove day/month/year directories left empty, up to (not including) images_dir."""
    for directory in sorted(set(directories), reverse=True):
        probe = directory
        while probe != images_dir and images_dir in probe.parents:
            try:
                probe.rmdir()
            except OSError:  # not empty, or already gone
                break
            known.discard(probe)
            fsync_dir(probe.parent)
            probe = probe.parent


@dataclass
class ImageScan:
    """What is on disk under images/: image files with their sizes, and crash leftovers."""

    files: dict[str, int]  # path relative to the data directory -> bytes
    temp_files: list[str]
    foreign: list[str]  # names the store never writes; left alone


def scan_images(data_dir: Path) -> ImageScan:
    """Walk images/ once (start-up reconciliation)."""
    scan = ImageScan({}, [], [])
    images_dir = data_dir / IMAGES_DIRNAME
    for root, _dirs, names in os.walk(images_dir):
        for name in names:
            path = Path(root, name)
            relative = path.relative_to(data_dir).as_posix()
            if is_temp_name(name):
                scan.temp_files.append(relative)
            elif name.startswith("f-") and name.endswith(".png"):
                scan.files[relative] = path.stat().st_size
            else:
                scan.foreign.append(relative)
    return scan


def decode_files(
    data_dir: Path, frame_id: str, channels: list[str], paths: list[str], sha256: str
) -> Frame:
    """Read a stored frame back, checking the pixels against the stored SHA-256."""
    arrays: dict[str, npt.NDArray[np.generic]] = {}
    for name, relative in zip(channels, paths, strict=True):
        path = data_dir / relative
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageMissingError(f"frame {frame_id}: image file {relative} is missing") from None
        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if array is None:
            raise ImageMissingError(f"frame {frame_id}: image file {relative} is not a PNG")
        arrays[name] = cv2.cvtColor(array, cv2.COLOR_BGR2RGB) if name == "rgb" else array
    try:
        frame = Frame(high=arrays.get("high"), low=arrays.get("low"), rgb=arrays.get("rgb"))  # type: ignore[arg-type]
    except BadInputError as exc:
        raise ImageMissingError(f"frame {frame_id}: image files are damaged ({exc})") from None
    if pixel_sha256(frame) != sha256:
        raise ImageMissingError(
            f"frame {frame_id}: image files do not match their stored SHA-256 (damaged on disk)"
        )
    return frame
