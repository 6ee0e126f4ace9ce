"""Start-up reconciliation of rows and files: orphans, missing files, crash leftovers."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.store import ReconcileAbortedError, Store
from edge.store.images import encode_frame

from .conftest import dual_frame


def day_dir(store: Store, frame_id: str) -> Path:
    return (store.data_dir / store.get_frame(frame_id).image_paths[0]).parent


def plant_orphans(directory: Path, count: int, start: int = 900) -> list[Path]:
    """Image files with the store's names but no row: what a crash before the commit leaves."""
    data = encode_frame(dual_frame(0)).files["high"]
    paths = [directory / f"f-20260101-{start + i:06d}_high.png" for i in range(count)]
    for path in paths:
        path.write_bytes(data)
    return paths


def test_orphans_and_temp_files_are_removed(open_store: Callable[..., Store]) -> None:
    store = open_store()
    kept = [store.add_frame(dual_frame(i)).id for i in range(3)]
    directory = day_dir(store, kept[0])
    store.close()
    orphans = plant_orphans(directory, 2)
    temp = directory / ".f-20260101-000950_low.png.0badc0de.tmp"
    temp.write_bytes(b"half a PNG")
    store = open_store()
    report = store.reconcile_report
    assert report is not None
    assert sorted(report.orphans_removed) == sorted(
        p.relative_to(store.data_dir).as_posix() for p in orphans
    )
    assert report.temp_files_removed == [temp.relative_to(store.data_dir).as_posix()]
    assert not any(p.exists() for p in [*orphans, temp])
    for frame_id in kept:  # the frames that have rows are untouched
        store.load_image(frame_id)
    assert store.images_bytes == sum(store.get_frame(i).bytes for i in kept)
    assert store.list_events(kind="reconcile")


def test_missing_files_are_flagged_and_unflagged_when_back(
    open_store: Callable[..., Store],
) -> None:
    store = open_store()
    frame_id = store.add_frame(dual_frame(1)).id
    other = store.add_frame(dual_frame(2)).id
    low = store.data_dir / store.get_frame(frame_id).image_paths[1]
    saved = low.read_bytes()
    store.close()
    low.unlink()
    store = open_store()
    assert store.reconcile_report is not None
    assert store.reconcile_report.missing_flagged == [frame_id]
    assert store.get_frame(frame_id).missing_image
    assert not store.get_frame(other).missing_image
    assert store.health()["missing_images"] == 1
    assert [e["frame_id"] for e in store.list_events(kind="missing-image")] == [frame_id]
    store.close()
    low.write_bytes(saved)  # e.g. the disk is mounted again
    store = open_store()
    assert not store.get_frame(frame_id).missing_image
    assert store.health()["missing_images"] == 0


def test_clean_up_of_more_than_half_is_aborted_and_nothing_deleted(
    open_store: Callable[..., Store],
) -> None:
    store = open_store()
    kept = [store.add_frame(dual_frame(i)).id for i in range(2)]  # 4 files
    directory = day_dir(store, kept[0])
    store.close()
    orphans = plant_orphans(directory, 5)  # 5 of 9 files have no row
    with pytest.raises(ReconcileAbortedError, match="5 of 9 image files have no row"):
        open_store()
    assert all(p.exists() for p in orphans)
    store = open_store(force_reconcile=True)
    assert not any(p.exists() for p in orphans)
    assert store.count_frames() == 2


def test_a_crash_during_the_first_frame_is_not_mistaken_for_a_bad_mount(
    tmp_path: Path, open_store: Callable[..., Store]
) -> None:
    open_store().close()
    directory = tmp_path / "data" / "images" / "2026" / "01" / "01"
    directory.mkdir(parents=True)
    orphans = plant_orphans(directory, 2)  # all the files there are, but one frame's worth
    store = open_store()
    assert not any(p.exists() for p in orphans)
    assert store.count_frames() == 0


def test_a_retention_delete_interrupted_by_a_crash_is_finished(
    tmp_path: Path, open_store: Callable[..., Store]
) -> None:
    store = open_store()
    doomed = store.add_frame(dual_frame(1)).id
    kept = store.add_frame(dual_frame(2)).id
    paths = [store.data_dir / p for p in store.get_frame(doomed).image_paths]
    store.close()
    # What delete_frames leaves if killed between removing the files and the rows.
    conn = sqlite3.connect(tmp_path / "data" / "edge.db")
    conn.execute("UPDATE frames SET retiring = 1 WHERE id = ?", [doomed])
    conn.commit()
    conn.close()
    paths[0].unlink()
    store = open_store()
    assert store.reconcile_report is not None
    assert store.reconcile_report.retirements_finished == 1
    assert store.reconcile_report.missing_flagged == []
    assert not paths[1].exists()
    assert [f.id for f in store.list_frames()] == [kept]
