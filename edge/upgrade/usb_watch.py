"""Installing bundles from USB sticks the system auto-mounts under one directory.

On appliances where sticks appear as `ROOT/<label>/` (udisks, autofs), the running service
watches `upgrade.usb_dir`: a `*.edgebundle` at the top of ROOT, or at the top of one
directory directly under it (one stick each), is installed through `ModelManager.upgrade`
once it has settled, with the actor `usb:<stick>` in the audit log. The engine copies the
bundle to internal storage and verifies the copy, so the stick may be pulled afterwards.

Why each bundle is tried once per insertion: a refused bundle left on a stick must not be
retried (and logged) every scan, but a technician who pulls and re-inserts a stick expects
another try. Its identity (path, size, mtime) vanishing from a scan counts as a removal.
The scan only lists and stats, never deeper than one level, never through symlinks, at most
`max_entries` entries per directory: a stick full of files costs the service nothing.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from edge.errors import EdgeError
from edge.store.records import iso, utc_now
from edge.upgrade.engine import UpgradeOutcome
from edge.upgrade.errors import UpgradeBusyError, UpgradeRefusedError

logger = logging.getLogger(__name__)

SUFFIX = ".edgebundle"
MAX_ENTRIES = 64
ONE_PER_STICK = "expected exactly one .edgebundle on the stick"

Identity = tuple[str, int, int]  # path, size, mtime_ns


class Installer(Protocol):
    def upgrade(self, bundle: Path, actor: str) -> UpgradeOutcome: ...


@dataclass(frozen=True)
class Candidate:
    """A bundle file seen by one scan, on the stick named `stick`."""

    path: Path
    stick: str
    size: int
    mtime_ns: int

    @property
    def identity(self) -> Identity:
        return str(self.path), self.size, self.mtime_ns


@dataclass(frozen=True)
class Outcome:
    """What became of one bundle (or of a stick refused whole)."""

    bundle: str
    stick: str
    accepted: bool
    message: str
    at: str
    model: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "stick": self.stick, "accepted": self.accepted,
                "message": self.message, "at": self.at, "model": self.model}  # fmt: skip


class UsbWatcher:
    """Scans `root` every `interval_s` seconds in its own thread (`start`/`stop`), or once
    per `scan_once()` call; installs settled bundles through `manager`."""

    def __init__(
        self,
        root: Path,
        manager: Installer,
        interval_s: float = 2.0,
        *,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.root = Path(os.path.abspath(root))  # bundle paths, the identities, stay whole
        self.manager = manager
        self.interval_s = interval_s
        self.max_entries = max_entries
        self.clock = clock
        self.last: Outcome | None = None
        self.scan_error: str | None = None
        self._seen: dict[str, tuple[int, int]] = {}  # path -> (size, mtime_ns), last scan
        self._tried: set[Identity] = set()  # tried since they appeared; forgotten when gone
        self._noticed: set[str] = set()  # warnings given for what is still there
        self._notes: set[str] = set()  # this scan's
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ scanning

    def scan_once(self) -> list[Outcome]:
        """One scan: install what has settled; the outcomes of this scan's installs."""
        with self._lock:
            self._notes = set()
            try:
                found = self._find()
            except OSError as exc:
                # Nothing on the sticks is known now: a stick seen again counts as re-inserted.
                self._fail_scan(f"cannot read {self.root}: {exc.strerror or exc}")
                self._seen, self._tried, self._noticed = {}, set(), set()
                return []
            if self.scan_error is not None:
                logger.info("USB upgrades: %s can be read again", self.root)
                self.scan_error = None
            outcomes = [o for o in map(self._consider, found) if o is not None]
            self._seen = {str(c.path): (c.size, c.mtime_ns) for c in found}
            self._tried &= {c.identity for c in found}
            self._noticed = self._notes
            return outcomes

    def _fail_scan(self, message: str) -> None:
        if self.scan_error != message:
            logger.warning("USB upgrades: %s; still watching", message)
        self.scan_error = message

    def _notice(self, key: str, message: str) -> None:
        """Warn once while the thing `key` names stays as it is."""
        if key not in self._noticed and key not in self._notes:
            logger.warning("USB upgrades: %s", message)
        self._notes.add(key)

    def _entries(self, folder: Path) -> list[os.DirEntry[str]]:
        """Up to `max_entries` entries of `folder`, hidden ones (`._x` from macOS) skipped."""
        entries: list[os.DirEntry[str]] = []
        with os.scandir(folder) as listing:
            for count, entry in enumerate(listing):
                if count >= self.max_entries:
                    self._notice(f"many:{folder}", f"{folder} holds more than "
                                 f"{self.max_entries} entries; the rest are ignored")  # fmt: skip
                    break
                if not entry.name.startswith("."):
                    entries.append(entry)
        return entries

    def _find(self) -> list[Candidate]:
        """The bundles at the top of ROOT and of each real directory directly under it;
        OSError when ROOT itself cannot be listed."""
        top = self._entries(self.root)
        found = self._one_bundle(self.root.name or str(self.root), self.root, top)
        for entry in top:
            if entry.is_symlink():
                self._ignore_link(entry)
            elif entry.is_dir(follow_symlinks=False):
                try:
                    entries = self._entries(Path(entry.path))
                except OSError as exc:
                    self._notice(f"read:{entry.path}",
                                 f"cannot read {entry.path}: {exc.strerror or exc}")  # fmt: skip
                    continue
                found.extend(self._one_bundle(entry.name, Path(entry.path), entries))
        return found

    def _ignore_link(self, entry: os.DirEntry[str]) -> None:
        if entry.name.endswith(SUFFIX) or entry.is_dir():
            self._notice(f"link:{entry.path}", f"{entry.path} is a symbolic link; ignored")

    def _one_bundle(
        self, stick: str, folder: Path, entries: list[os.DirEntry[str]]
    ) -> list[Candidate]:
        """The stick's one bundle; none (refused, with a warning) when it holds several."""
        bundles: list[Candidate] = []
        for entry in entries:
            if not entry.name.endswith(SUFFIX):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone since the listing: the next scan sees what is there
            if stat.S_ISLNK(info.st_mode):
                self._ignore_link(entry)
            elif stat.S_ISREG(info.st_mode):
                bundles.append(Candidate(Path(entry.path), stick, info.st_size, info.st_mtime_ns))
        if len(bundles) > 1:
            self._refuse_stick(stick, folder, bundles)
            return []
        return bundles

    def _refuse_stick(self, stick: str, folder: Path, bundles: list[Candidate]) -> None:
        names = ", ".join(sorted(c.path.name for c in bundles))
        key = f"several:{folder}:{names}"  # by name: copying a second one must not re-warn
        message = f"{folder}: {ONE_PER_STICK} (found {len(bundles)}: {names}); nothing done"
        if key not in self._noticed and key not in self._notes:
            self.last = Outcome(folder.name, stick, False, message, iso(self.clock()))
        self._notice(key, message)

    # ------------------------------------------------------------------ installing

    def _consider(self, bundle: Candidate) -> Outcome | None:
        if bundle.identity in self._tried:
            return None
        if self._seen.get(str(bundle.path)) != (bundle.size, bundle.mtime_ns):
            return None  # new or still being written: wait for it to settle
        return self._install(bundle)

    def _install(self, bundle: Candidate) -> Outcome | None:
        actor = f"usb:{bundle.stick}"
        logger.info("USB upgrades: installing %s (%s)", bundle.path, actor)
        model: str | None = None
        try:
            outcome = self.manager.upgrade(bundle.path, actor=actor)
        except UpgradeBusyError as exc:
            logger.info("USB upgrades: %s; trying again at the next scan", exc.message)
            return None
        except UpgradeRefusedError as exc:
            accepted, message = False, exc.message
        except EdgeError as exc:
            accepted, message = False, f"upgrade failed: {exc.message}"
        except Exception as exc:  # the service goes on screening; the log has the trace
            logger.exception("USB upgrades: installing %s failed", bundle.path)
            accepted, message = False, f"upgrade failed: {type(exc).__name__}: {exc}"
        else:
            accepted, message, model = True, outcome.message, outcome.model.model_id
        self._tried.add(bundle.identity)
        if accepted:
            logger.info("USB upgrades: %s from %s: %s", model, bundle.path, message)
        else:
            logger.warning("USB upgrades: %s: %s", bundle.path, message)
        done = Outcome(bundle.path.name, bundle.stick, accepted, message, iso(self.clock()), model)
        self.last = done
        return done

    # ------------------------------------------------------------------ thread, status

    def status(self) -> dict[str, Any]:
        """Where it watches, whether the last scan could read it, the last outcome."""
        return {
            "watching": str(self.root),
            "scanning": self.scan_error or "ok",
            "last": None if self.last is None else self.last.as_json(),
        }

    def source_status(self) -> dict[str, Any]:
        """The watcher as the status bar and /api/health list sources: `watching`, or
        `unreadable` (no stick mounted yet is normal, so never degraded)."""
        return {
            "source": f"usb:{self.root}",
            "state": "watching" if self.scan_error is None else "unreadable",
            **self.status(),
        }

    def start(self) -> None:
        logger.info("USB upgrades: watching %s every %g s", self.root, self.interval_s)
        self._thread = threading.Thread(target=self._run, name="usb-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.scan_once()
            except Exception:  # a scan's bug must not end the watching
                logger.exception("USB upgrades: scan failed")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop scanning; an install in progress is waited for up to `timeout_s` (a power
        cut during one is repaired at the next start, so giving up then is safe)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.warning("USB upgrades: an install was still running at shutdown")
