"""A full disk degrades logging instead of stopping the appliance, and logging recovers.

Three ways to fill it, each taking the store's ordinary error path:
- `capacity_bytes`: the store's own cap on its image files raises OSError(ENOSPC) before
  writing, exactly as the kernel would on a disk of that size (runs everywhere);
- `db_max_bytes`: SQLite's `max_page_count` makes SQLite itself fail with a real
  SQLITE_FULL (runs everywhere);
- a real 2 MiB tmpfs: the kernel's own ENOSPC, or SQLITE_FULL when the WAL hits it first
  (needs root to mount; skipped elsewhere).
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge.store import LoggingDegradedError, RetentionPolicy, Store, StoreError, apply_retention
from edge.store.images import encode_frame, scan_images

from .conftest import dual_frame, screened


def files_match_rows(store: Store) -> None:
    """Every image file on disk is named by a row and vice versa; no temp files."""
    scan = scan_images(store.data_dir)
    named = {p for f in store.list_frames(limit=10_000) for p in f.image_paths}
    assert scan.temp_files == []
    assert set(scan.files) == named


def test_capacity_full_degrades_then_recovers(open_store: Callable[..., Store]) -> None:
    one = encode_frame(dual_frame(0)).nbytes
    store = open_store(capacity_bytes=int(3.5 * one))
    kept = [store.add_frame(dual_frame(i)).id for i in range(1, 4)]
    assert store.health()["logging"] == "ok"

    with pytest.raises(LoggingDegradedError, match="ENOSPC") as caught:
        store.add_frame(dual_frame(9), bag="B9")
    assert isinstance(caught.value, StoreError)  # what the service catches to screen anyway
    health = store.health()
    assert health["logging"] == "degraded" and health["failing"] == ["frame"]
    assert health["reason"].startswith("ENOSPC") and health["failed_writes"] == 1
    files_match_rows(store)
    assert store.count_frames() == 3
    # Results of frames already logged still go in; they do not clear the frame failure.
    store.add_result(kept[0], screened(True))
    assert store.health()["logging"] == "degraded"
    with pytest.raises(LoggingDegradedError):
        store.add_frame(dual_frame(10))
    assert store.health()["failed_writes"] == 2

    apply_retention(store, RetentionPolicy(quota_bytes=2 * one))  # e.g. the service's timer
    recovered = store.add_frame(dual_frame(11))
    health = store.health()
    assert health["logging"] == "ok" and health["reason"] is None
    assert health["last_write"] is not None
    assert store.load_image(recovered.id).high is not None
    events = [e["kind"] for e in store.list_events()]
    assert events.index("logging-recovered") < events.index("logging-degraded")  # newest first
    assert store.list_events(kind="logging-recovered")[0]["details"]["failed_writes"] == 2
    files_match_rows(store)


def test_all_pinned_full_store_stays_degraded_until_unpinned(
    open_store: Callable[..., Store],
) -> None:
    one = encode_frame(dual_frame(0)).nbytes
    quota = int(2.5 * one)
    store = open_store(capacity_bytes=quota, retention=RetentionPolicy(quota_bytes=quota))
    pinned = [store.add_frame(dual_frame(i), pinned=True).id for i in (1, 2)]
    with pytest.raises(LoggingDegradedError, match="ENOSPC"):
        store.add_frame(dual_frame(3))  # retention may not touch pinned frames
    assert store.health()["logging"] == "degraded"
    store.set_pinned(pinned[0], False)
    store.add_frame(dual_frame(4))  # retention makes room by deleting the unpinned frame
    assert store.health()["logging"] == "ok"
    assert pinned[1] in {f.id for f in store.list_frames()}
    assert pinned[0] not in {f.id for f in store.list_frames()}


def test_sqlite_full_degrades_and_leaves_no_files(
    tmp_path: Path, open_store: Callable[..., Store]
) -> None:
    open_store().close()
    size = (tmp_path / "data" / "edge.db").stat().st_size
    store = open_store(db_max_bytes=size + 6 * 4096)
    padding = {"notes": "x" * 3000}  # rows fill pages fast
    with pytest.raises(LoggingDegradedError, match="SQLITE_FULL"):
        for i in range(50):
            store.add_frame(dual_frame(i), metadata=padding)
    assert store.health()["reason"].startswith("SQLITE_FULL")
    files_match_rows(store)  # the files written before the failed commit were removed
    logged = store.count_frames()
    assert logged >= 1
    apply_retention(store, RetentionPolicy(quota_bytes=0))  # deleted rows free their pages
    store.add_frame(dual_frame(99), metadata=padding)
    assert store.health()["logging"] == "ok"
    conn = sqlite3.connect(tmp_path / "data" / "edge.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


@contextlib.contextmanager
def tiny_disk(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True, text=True,
    )  # fmt: skip
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()[:200]}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_real_full_filesystem(tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "disk", "2m") as disk:
        store = Store(disk / "data")
        try:
            added = 0
            with pytest.raises(LoggingDegradedError) as caught:
                for i in range(200):
                    store.add_frame(dual_frame(i, shape=(128, 128)))  # ~64 KiB of PNG each
                    added += 1
            assert caught.value.reason.split(":")[0] in {"ENOSPC", "SQLITE_FULL"}
            assert store.health()["logging"] == "degraded"
            assert 5 < added < 40
            # Images are written before the row: a frame bigger than the disk meets the
            # kernel's ENOSPC in the file write, whichever write filled the disk first.
            with pytest.raises(LoggingDegradedError, match="ENOSPC: No space left on device"):
                store.add_frame(dual_frame(7, shape=(1024, 1024)))
            files_match_rows(store)
            apply_retention(store, RetentionPolicy(quota_bytes=store.images_bytes // 2))
            store.add_frame(dual_frame(500, shape=(128, 128)))
            assert store.health()["logging"] == "ok"
        finally:
            store.close()
        with Store(disk / "data") as reopened:  # and it starts again cleanly
            report = reopened.reconcile_report
            assert report is not None and not report.orphans_removed
            assert not report.temp_files_removed and not report.missing_flagged
