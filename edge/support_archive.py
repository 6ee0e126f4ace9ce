"""The support bundle's archive: a gzip'd tar written to a temp file beside its final name,
renamed into place only when complete, with a size cap that is never exceeded.

The cap is kept by counting each member uncompressed (tar header and padding included): gzip
never makes data much larger, so the archive stays under the cap whatever compresses how. A
member that would break it is left out and named in `cut`, which the manifest lists. Any
write error (no room, the stick pulled) removes the temp file: nothing half-written is left.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import tarfile
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from edge.errors import EdgeError

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE  # tarfile pads the archive to a multiple of this
# gzip's worst case on incompressible data: stored blocks, 5 bytes per 64 KiB, header, trailer.
GZIP_RATIO, GZIP_FIXED = 1.001, 1024


class SupportBundleError(EdgeError):
    """The support bundle cannot be written where asked (the message says why)."""


def member_cost(size: int) -> int:
    """Bytes one member of `size` bytes takes in the tar stream: header plus padded data."""
    return BLOCK + -(-size // BLOCK) * BLOCK


def archive_bound(tar_bytes: int) -> int:
    """The most a gzip'd tar stream of `tar_bytes` (before end padding) can take on disk."""
    padded = -(-(tar_bytes + 2 * BLOCK) // RECORD) * RECORD
    return int(padded * GZIP_RATIO) + GZIP_FIXED


class _CappedFile(io.RawIOBase):
    """A file that fails with ENOSPC past `capacity` bytes, as if the disk were that small."""

    def __init__(self, raw: io.BufferedWriter, capacity: int | None) -> None:
        self.raw, self.capacity, self.written = raw, capacity, 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        if self.capacity is not None and self.written + size > self.capacity:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.raw.write(data)
        self.written += size
        return size

    def flush(self) -> None:
        self.raw.flush()


class ArchiveWriter:
    """Members in, one archive out: `add()` each, then `commit()`; leaving the `with` block
    without committing (an error) deletes the temp file."""

    def __init__(
        self, final_path: Path, max_bytes: int, *, capacity_bytes: int | None = None
    ) -> None:
        self.final_path = final_path
        self.max_bytes = max_bytes
        self.capacity_bytes = capacity_bytes
        self.entries: list[dict[str, Any]] = []
        self.cut: list[str] = []
        self.tar_bytes = 0
        self._tmp: Path | None = None
        self._raw: io.BufferedWriter | None = None
        self._tar: tarfile.TarFile | None = None

    def __enter__(self) -> ArchiveWriter:
        out = self.final_path.parent
        try:
            fd, name = tempfile.mkstemp(dir=out, prefix=".edge-support-", suffix=".part")
        except OSError as exc:
            message = f"--out {out}: cannot write there ({exc.strerror or exc})"
            raise SupportBundleError(message) from None
        self._tmp = Path(name)
        self._raw = os.fdopen(fd, "wb")
        sink = _CappedFile(self._raw, self.capacity_bytes)
        self._tar = tarfile.open(fileobj=sink, mode="w:gz", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._tmp is not None:  # not committed: an error on the way
            self._discard()

    def fits(self, size: int, reserve: int = 0) -> bool:
        """Whether a member of `size` bytes still fits, keeping `reserve` tar bytes free."""
        return archive_bound(self.tar_bytes + member_cost(size) + reserve) <= self.max_bytes

    def add(self, name: str, data: bytes, *, reserve: int = 0, mtime: float | None = None) -> bool:
        """Add one member unless it would break the cap (then it is listed in `cut`)."""
        if any(entry["name"] == name for entry in self.entries):
            raise ValueError(f"{name}: already in the archive")
        if not self.fits(len(data), reserve):
            self.cut.append(f"{name} ({len(data)} bytes: over the archive size cap)")
            return False
        self._write(name, data, mtime)
        self.entries.append(
            {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        )
        return True

    def _write(self, name: str, data: bytes, mtime: float | None) -> None:
        assert self._tar is not None, "use ArchiveWriter in a with block"
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o640
        info.mtime = int(time.time() if mtime is None else mtime)
        try:
            self._tar.addfile(info, io.BytesIO(data))
        except OSError as exc:
            raise self._failure(exc) from exc
        self.tar_bytes += member_cost(len(data))

    def add_last(self, name: str, data: bytes) -> None:
        """The closing member (the manifest): SupportBundleError if even it does not fit."""
        if not self.fits(len(data)):
            raise SupportBundleError(
                f"the archive size cap ({self.max_bytes} bytes) leaves no room for {name}"
            )
        self._write(name, data, None)

    def commit(self) -> int:
        """Finish the archive, make it durable and give it its final name; its size."""
        assert self._tar is not None and self._raw is not None and self._tmp is not None
        try:
            self._tar.close()
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()
            if self.final_path.exists():
                raise OSError(errno.EEXIST, f"{self.final_path.name} exists")
            os.replace(self._tmp, self.final_path)
        except OSError as exc:
            raise self._failure(exc) from exc
        self._tmp = None
        _fsync_dir(self.final_path.parent)
        return self.final_path.stat().st_size

    def _failure(self, exc: OSError) -> SupportBundleError:
        self._discard()
        return SupportBundleError(
            f"--out {self.final_path.parent}: writing the support bundle failed "
            f"({exc.strerror or exc}); nothing was left there"
        )

    def _discard(self) -> None:
        for closing in (self._tar, self._raw):
            try:
                if closing is not None:
                    closing.close()
            except (OSError, ValueError):
                pass  # the file is deleted next: what it failed to flush does not matter
        self._tar = self._raw = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (vfat sticks) refuse fsync on a directory; the data is synced
    finally:
        os.close(fd)
