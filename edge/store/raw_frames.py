"""Raw scanner frames kept for calibration, as retention sees them.

With `[calibration] keep_raw`, each raw frame is also written, before correction, as
DATA/calibration/raw/<frame id>.tiff (calibration/ingest.py). They are calibration
material, not the screening record (the logged, corrected frame is), so retention treats
them apart:

- protected, never deleted: a file a calibration profile names as a source
  (DATA/calibration/scanner-NNNN.json, "sources"[].path, matched by file name: profiles
  are the audit trail of a calibration, their sources must stay checkable), and the raw
  frame of a pinned frame. A profile header that cannot be read protects every raw frame
  (what it names is unknown; a warning says so);
- by age: unprotected raw frames older than `max_age_days` (file time) go with old frames;
- by space: their bytes count towards the quota as image bytes do, and under pressure the
  unprotected raw frames go first, oldest first, before any logged frame: losing one costs
  a possible calibration input, losing a logged frame costs screening evidence.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

RAW_SUFFIX = ".tiff"
PROFILE_RE = re.compile(r"^scanner-(\d{4,})\.json$")  # calibration/profile.py's headers
MAX_HEADER_BYTES = 4 << 20
STALE_TEMP_S = 3600.0  # a temp file this old is what a crash mid-write left


def calibration_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "calibration"


def raw_dir(data_dir: Path) -> Path:
    return calibration_dir(data_dir) / "raw"


@dataclass(frozen=True)
class RawFile:
    path: Path
    size: int
    mtime: float

    @property
    def frame_id(self) -> str:
        return self.path.name.removesuffix(RAW_SUFFIX)


def _profile_sources(data_dir: Path) -> set[str] | None:
    """File names the profiles name as sources; None when a header cannot be read."""
    folder = calibration_dir(data_dir)
    names: set[str] = set()
    try:
        headers = [p for p in folder.iterdir() if PROFILE_RE.match(p.name)]
    except FileNotFoundError:
        return names
    for header in headers:
        try:
            with header.open("rb") as fh:
                doc = json.loads(fh.read(MAX_HEADER_BYTES + 1))
            sources = doc["sources"]
            names.update(Path(str(s["path"])).name for s in sources)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning(
                "retention: calibration profile %s cannot be read (%s): every raw frame kept",
                header, exc,
            )  # fmt: skip
            return None
    return names


def raw_bytes(data_dir: Path) -> int:
    """What the raw frames use, from one directory listing (stat only)."""
    total = 0
    try:
        with os.scandir(raw_dir(data_dir)) as entries:
            for entry in entries:
                if entry.name.endswith(RAW_SUFFIX) and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(FileNotFoundError):
                        total += entry.stat(follow_symlinks=False).st_size
    except FileNotFoundError:
        return 0
    return total


class RawFrames:
    """The raw frames of one data directory, listed once; deletions keep the count."""

    def __init__(self, data_dir: Path, pinned: set[str] | None = None) -> None:
        self.folder = raw_dir(data_dir)
        self.files: list[RawFile] = []
        self.total_bytes = 0
        self.deleted = 0
        self.freed_bytes = 0
        self.protected: set[Path] = set()
        stale = time.time() - STALE_TEMP_S
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            if entry.name.startswith("."):
                if st.st_mtime < stale:
                    self._unlink(Path(entry.path))
                continue
            if entry.name.endswith(RAW_SUFFIX):
                self.files.append(RawFile(Path(entry.path), st.st_size, st.st_mtime))
                self.total_bytes += st.st_size
        sources = _profile_sources(data_dir) if self.files else set()
        keep = pinned or set()
        self.protected = {
            f.path
            for f in self.files
            if sources is None or f.path.name in sources or f.frame_id in keep
        }
        self.files.sort(key=lambda f: (f.mtime, f.path.name))

    @property
    def deletable(self) -> list[RawFile]:
        """Unprotected raw frames, oldest first."""
        return [f for f in self.files if f.path not in self.protected]

    def delete_older_than(self, cutoff: float) -> None:
        """Delete unprotected raw frames last written before `cutoff` (a POSIX time)."""
        self._delete([f for f in self.deletable if f.mtime < cutoff])

    def delete_for(self, need: int) -> int:
        """Delete unprotected raw frames, oldest first, until `need` bytes are freed; the
        bytes freed."""
        chosen, total = [], 0
        for f in self.deletable:
            if total >= need:
                break
            chosen.append(f)
            total += f.size
        before = self.freed_bytes
        self._delete(chosen)
        return self.freed_bytes - before

    def _delete(self, chosen: list[RawFile]) -> None:
        gone = set()
        for f in chosen:
            if self._unlink(f.path):
                gone.add(f.path)
                self.deleted += 1
                self.freed_bytes += f.size
                self.total_bytes -= f.size
        self.files = [f for f in self.files if f.path not in gone]

    @staticmethod
    def _unlink(path: Path) -> bool:
        try:
            path.unlink()
        except FileNotFoundError:
            return True  # gone already: nothing to keep
        except OSError as exc:
            logger.error("retention: cannot delete raw frame %s: %s", path, exc)
            return False
        return True
