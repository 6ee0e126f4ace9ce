"""Hot folder: the scanner drops image files; each is taken once complete, then moved away.

A file is complete when it has not changed (size and modification time) for `settle_s`
seconds. Files under a temporary name (a leading '.' or a '.tmp'/'.part' suffix) are never
touched, so a scanner that writes and then renames can use a short settle time. A 16-bit
pair waits for both of its halves. Taken files go to `processed/` (or are deleted), unreadable ones to `rejected/`
beside a `<name>.reason.txt`; nothing is ever silently dropped.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import EdgeError
from edge.frames import Frame
from edge.ingest.images import load_image

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcs", ".dcm"}
TEMPORARY_SUFFIXES = {".tmp", ".part", ".partial"}
PAIR_SUFFIXES = ("_high", "_low")

# Called with the loaded frame and the files it came from; returns once the frame is
# durable (it may block: that is the folder's back-pressure). Raising rejects the files.
FrameSink = Callable[[Frame, list[Path]], None]


@dataclass
class FolderStats:
    taken: int = 0
    rejected: int = 0
    errors: int = 0
    last_scan: float = 0.0
    last_error: str | None = None
    waiting: dict[str, float] = field(default_factory=dict)


def unused_name(target: Path) -> Path:
    """`target`, or `name.1.ext`, `name.2.ext`... when a file of that name is already there."""
    candidate, n = target, 0
    while candidate.exists():
        n += 1
        candidate = target.with_name(f"{target.stem}.{n}{target.suffix}")
    return candidate


def is_candidate(path: Path) -> bool:
    """An image file the scanner has finished naming (not a temporary or hidden file)."""
    name = path.name
    if name.startswith(".") or path.suffix.lower() in TEMPORARY_SUFFIXES:
        return False
    return path.suffix.lower() in IMAGE_SUFFIXES


def pair_partner(path: Path) -> Path | None:
    """The other half of a `<stem>_high.png` / `<stem>_low.png` pair, or None."""
    stem = path.stem
    for mine, other in (PAIR_SUFFIXES, PAIR_SUFFIXES[::-1]):
        if stem.endswith(mine):
            return path.with_name(stem[: -len(mine)] + other + path.suffix)
    return None


class HotFolder:
    """Polls one directory and hands complete image files to `sink`, one at a time."""

    def __init__(
        self,
        path: Path,
        sink: FrameSink,
        *,
        settle_s: float = 2.0,
        poll_s: float = 0.5,
        keep_processed: bool = True,
    ) -> None:
        self.path = path
        self.sink = sink
        self.settle_s = settle_s
        self.poll_s = poll_s
        self.keep_processed = keep_processed
        self.stats = FolderStats()
        self._seen: dict[Path, tuple[int, int, float]] = {}  # size, mtime_ns, first seen stable
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def status(self) -> dict[str, object]:
        """For health: counts, the last error, files waiting to settle."""
        stats = self.stats
        return {
            "source": f"folder:{self.path}",
            "state": "error" if stats.last_error and not self.path.is_dir() else "watching",
            "taken": stats.taken,
            "rejected": stats.rejected,
            "errors": stats.errors,
            "last_error": stats.last_error,
            "waiting": len(stats.waiting),
        }

    def start(self) -> None:
        for sub in ("processed", "rejected"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name=f"folder:{self.path}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.scan_once()
            except OSError as exc:  # the folder vanished (unmounted) or is unreadable
                self.stats.errors += 1
                self.stats.last_error = f"{self.path}: {exc}"
                logger.error("hot folder scan failed: %s", exc)
            self._stop.wait(self.poll_s)

    def scan_once(self, now: float | None = None) -> int:
        """Take every complete file now; returns how many frames were handed over."""
        now = time.monotonic() if now is None else now
        self.stats.last_scan = now
        handed = 0
        present = {p for p in self.path.iterdir() if p.is_file() and is_candidate(p)}
        for gone in set(self._seen) - present:
            del self._seen[gone]
        for path in sorted(present):
            if not path.exists() or not self._settled(path, now):
                continue
            partner = pair_partner(path)
            if partner is not None:
                if partner not in present or not self._settled(partner, now):
                    continue  # wait for the other half
                if path.stem.endswith("_low"):
                    continue  # the pair is taken through its high half
            files = [path] if partner is None else [path, partner]
            handed += self._take(path, files)
        self.stats.waiting = {str(p): now - t for p, (_, _, t) in self._seen.items()}
        return handed

    def _settled(self, path: Path, now: float) -> bool:
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        signature = (st.st_size, st.st_mtime_ns)
        previous = self._seen.get(path)
        if previous is None or previous[:2] != signature:
            self._seen[path] = (*signature, now)
            return self.settle_s <= 0
        return now - previous[2] >= self.settle_s

    def _take(self, path: Path, files: list[Path]) -> int:
        try:
            frame = load_image(path)
            frame.meta.setdefault("source_files", [f.name for f in files])
        except EdgeError as exc:
            self._reject(files, exc.message)
            return 0
        try:
            self.sink(frame, files)
        except EdgeError as exc:
            self._reject(files, exc.message)
            return 0
        for f in files:
            self._seen.pop(f, None)
            if self.keep_processed:
                shutil.move(str(f), str(unused_name(self.path / "processed" / f.name)))
            else:
                f.unlink(missing_ok=True)
        self.stats.taken += 1
        return 1

    def _reject(self, files: list[Path], reason: str) -> None:
        logger.warning("hot folder rejected %s: %s", [f.name for f in files], reason)
        self.stats.rejected += 1
        for f in files:
            self._seen.pop(f, None)
            target = unused_name(self.path / "rejected" / f.name)
            shutil.move(str(f), str(target))
            target.with_name(target.name + ".reason.txt").write_text(
                reason + "\n", encoding="utf-8"
            )
