"""Retention: clean bags first, then not screened, alarm and disputed bags; pinned never."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.errors import BadInputError
from edge.frames import Result
from edge.store import RetentionPolicy, Store, apply_retention
from edge.store.images import encode_frame

from .conftest import dual_frame, screened

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def add(
    store: Store,
    seed: int,
    kind: str,
    minute: int,
    bag: str | None = None,
    pinned: bool = False,
) -> str:
    """A frame received at T0 + minute, screened/decided as `kind` says."""
    frame_id = store.add_frame(
        dual_frame(seed), bag=bag or f"bag{seed}", received=T0 + timedelta(minutes=minute),
        pinned=pinned,
    ).id  # fmt: skip
    if kind == "clean":
        store.add_result(frame_id, screened(False))
        store.add_decision(frame_id, "clear")  # agreeing with the model: still clean
    elif kind == "alarm":
        store.add_result(frame_id, screened(True))
        store.add_decision(frame_id, "threat")
    elif kind == "not_screened":
        store.add_result(frame_id, Result.not_screened("detector crashed"))
    elif kind == "disputed_clear":  # alarm, operator cleared it
        store.add_result(frame_id, screened(True))
        store.add_decision(frame_id, "clear")
    elif kind == "disputed_search":  # no alarm, operator searched the bag
        store.add_result(frame_id, screened(False))
        store.add_decision(frame_id, "search")
    elif kind != "unscreened":
        raise ValueError(kind)
    return frame_id


def delete_one(store: Store) -> set[str]:
    """Shrink the quota by one byte: exactly the next frame in line goes."""
    before = {f.id for f in store.list_frames()}
    report = apply_retention(store, RetentionPolicy(quota_bytes=store.images_bytes - 1))
    after = {f.id for f in store.list_frames()}
    assert report.deleted_frames == len(before - after)
    return before - after


def test_deletion_order_by_class_then_age_and_pinned_never(
    open_store: Callable[..., Store],
) -> None:
    store = open_store()
    ids = {
        "pinned": add(store, 1, "clean", 0, pinned=True),
        "disputed_clear": add(store, 2, "disputed_clear", 1),
        "alarm_old": add(store, 3, "alarm", 2),
        "clean_old": add(store, 4, "clean", 3),
        "not_screened": add(store, 5, "not_screened", 4),
        "disputed_search": add(store, 6, "disputed_search", 5),
        "unscreened": add(store, 7, "unscreened", 6),
        "clean_new": add(store, 8, "clean", 7),
        "alarm_new": add(store, 9, "alarm", 8),
    }
    expected = [
        "clean_old", "clean_new", "not_screened", "unscreened", "alarm_old", "alarm_new",
        "disputed_clear", "disputed_search",
    ]  # fmt: skip
    order = []
    for _ in expected:
        (gone,) = delete_one(store)
        order.append(next(name for name, frame_id in ids.items() if frame_id == gone))
    assert order == expected
    # Only the pinned frame is left, and no quota makes it go.
    report = apply_retention(store, RetentionPolicy(quota_bytes=0))
    assert report.deleted_frames == 0 and report.bytes_still_needed > 0
    assert [f.id for f in store.list_frames()] == [ids["pinned"]]
    assert store.images_bytes == store.get_frame(ids["pinned"]).bytes
    files = [p for p in store.images_dir.rglob("*") if p.is_file()]
    assert len(files) == 2  # deleted frames' files are gone too


def test_a_bag_is_as_precious_as_its_most_precious_view(open_store: Callable[..., Store]) -> None:
    store = open_store()
    side_clean = add(store, 1, "clean", 0, bag="B1")  # the oldest, but its bag alarmed
    top_alarm = add(store, 2, "alarm", 1, bag="B1")
    other_clean = add(store, 3, "clean", 2, bag="B2")
    assert delete_one(store) == {other_clean}
    assert delete_one(store) == {side_clean}
    assert delete_one(store) == {top_alarm}


def test_max_age_deletes_old_frames_except_pinned(open_store: Callable[..., Store]) -> None:
    store = open_store()
    old_alarm = add(store, 1, "alarm", 0)
    old_pinned = add(store, 2, "clean", 1, pinned=True)
    recent = add(store, 3, "clean", 60 * 24 * 10)
    report = apply_retention(store, RetentionPolicy(max_age_days=5), now=T0 + timedelta(days=12))
    assert report.deleted_frames == 1 and report.by_class == {"alarm": 1}
    assert {f.id for f in store.list_frames()} == {old_pinned, recent}
    assert old_alarm not in {f.id for f in store.list_frames()}
    assert store.list_events(kind="retention")[0]["details"]["by_class"] == {"alarm": 1}


def test_writes_apply_the_stores_policy_and_keep_the_alarm_bags(
    open_store: Callable[..., Store],
) -> None:
    size = len(dual_frame(0).high.tobytes()) * 2 + 400  # ~ one frame's PNG pair, and then some
    store = open_store(retention=RetentionPolicy(quota_bytes=6 * size))
    alarms = [add(store, 100 + i, "alarm", i) for i in range(3)]
    cleans = [add(store, 200 + i, "clean", 10 + i) for i in range(12)]
    assert store.images_bytes <= 6 * size
    left = {f.id for f in store.list_frames()}
    assert set(alarms) <= left  # the alarm bags stayed
    assert left - set(alarms) == set(cleans[-len(left) + 3 :])  # the newest clean ones stayed
    assert store.health()["logging"] == "ok"


def test_free_space_reserve_under_a_capacity(open_store: Callable[..., Store]) -> None:
    one = encode_frame(dual_frame(0)).nbytes
    store = open_store(capacity_bytes=20 * one, retention=RetentionPolicy(min_free_bytes=15 * one))
    for i in range(10):
        add(store, i, "clean", i)
    assert store.free_bytes() >= 15 * one - one  # the reserve holds (frames differ by a few bytes)
    assert store.count_frames() <= 6


@pytest.mark.parametrize(
    ("policy", "free", "used", "incoming", "needed"),
    [
        (RetentionPolicy(), 0, 10**9, 10**6, 0),
        (RetentionPolicy(min_free_bytes=100), 150, 0, 0, 0),
        (RetentionPolicy(min_free_bytes=100), 150, 0, 70, 20),
        (RetentionPolicy(quota_bytes=1000), 0, 900, 150, 50),
        (RetentionPolicy(min_free_bytes=100, quota_bytes=1000), 50, 900, 0, 50),
        (RetentionPolicy(min_free_bytes=100, quota_bytes=1000), 500, 1200, 0, 200),
    ],
)
def test_bytes_needed(
    policy: RetentionPolicy, free: int, used: int, incoming: int, needed: int
) -> None:
    assert policy.bytes_needed(free, used, incoming) == needed


@pytest.mark.parametrize(
    "fields",
    [{"min_free_bytes": -1}, {"max_age_days": -0.5}, {"quota_bytes": -10}],
)
def test_a_negative_policy_is_refused(fields: dict[str, float]) -> None:
    with pytest.raises(BadInputError, match="expected >= 0"):
        RetentionPolicy(**fields)  # type: ignore[arg-type]


def test_apply_retention_needs_a_policy(open_store: Callable[..., Store]) -> None:
    with pytest.raises(BadInputError, match="no policy"):
        apply_retention(open_store())


def keep_raw(store: Store, frame_id: str, minute: int, size: int = 4000) -> Path:
    """A raw frame as calibration/ingest.py keeps it, last written at T0 + minute."""
    folder = store.data_dir / "calibration" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{frame_id}.tiff"
    path.write_bytes(bytes(size))
    at = (T0 + timedelta(minutes=minute)).timestamp()
    os.utime(path, (at, at))
    return path


def profile_naming(store: Store, version: int, *names: str) -> None:
    """A calibration profile header whose sources are the given files (as given on the
    command line: any folder, matched by name)."""
    folder = store.data_dir / "calibration"
    sources = [{"kind": "air", "path": f"/mnt/usb/{n}", "sha256": "0" * 64} for n in names]
    (folder / f"scanner-{version:04d}.json").write_text(json.dumps({"sources": sources}))


def test_raw_frames_go_before_any_logged_frame_unless_a_profile_names_them(
    open_store: Callable[..., Store],
) -> None:
    store = open_store()
    alarm = add(store, 1, "alarm", 0)
    clean = add(store, 2, "clean", 1)
    pinned = add(store, 3, "clean", 2, pinned=True)
    old_raw = keep_raw(store, "raw-old", 0)
    named = keep_raw(store, "raw-named", 1)
    new_raw = keep_raw(store, "raw-new", 5)
    of_pinned = keep_raw(store, pinned, 2)
    half_written = store.data_dir / "calibration" / "raw" / ".raw-newest.tmp.tiff"
    half_written.write_bytes(bytes(4000))
    profile_naming(store, 1, "raw-named.tiff")
    images = store.images_bytes
    # The quota counts the raw frames: one raw frame over it deletes the oldest raw frame only.
    report = apply_retention(store, RetentionPolicy(quota_bytes=images + 4 * 4000 - 1))
    assert (report.deleted_frames, report.raw_deleted) == (0, 1)
    assert report.raw_freed_bytes == 4000 and report.raw_bytes == 3 * 4000
    assert not old_raw.exists() and new_raw.exists() and named.exists()
    assert half_written.exists()  # not yet stale: its writer is still at work
    # Under more pressure the other unnamed raw frame goes, then the clean bag; the named
    # raw frame, the pinned frame's raw frame and the alarm bag stay.
    report = apply_retention(store, RetentionPolicy(quota_bytes=images + 2 * 4000 - 1))
    assert (report.raw_deleted, report.by_class) == (1, {"clean": 1})
    assert not new_raw.exists() and named.exists() and of_pinned.exists()
    assert {f.id for f in store.list_frames()} == {alarm, pinned}
    assert clean not in {f.id for f in store.list_frames()}
    event = store.list_events(kind="retention")[0]
    assert event["details"]["raw_deleted"] == 1 and "1 raw calibration frames" in event["message"]


def test_old_raw_frames_go_by_age(open_store: Callable[..., Store]) -> None:
    store = open_store()
    old, recent = keep_raw(store, "raw-old", 0), keep_raw(store, "raw-recent", 60 * 24 * 10)
    named = keep_raw(store, "raw-named", 0)
    profile_naming(store, 1)
    profile_naming(store, 2, "raw-named.tiff")  # an older profile's sources count as well
    report = apply_retention(store, RetentionPolicy(max_age_days=5), now=T0 + timedelta(days=12))
    assert (report.deleted_frames, report.raw_deleted) == (0, 1)
    assert not old.exists() and recent.exists() and named.exists()


def test_an_unreadable_profile_keeps_every_raw_frame(
    open_store: Callable[..., Store], caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store()
    kept = keep_raw(store, "raw-old", 0)
    (store.data_dir / "calibration" / "scanner-0001.json").write_text('{"sources": [')
    with caplog.at_level(logging.WARNING, logger="edge.store.raw_frames"):
        report = apply_retention(store, RetentionPolicy(quota_bytes=0))
    assert report.raw_deleted == 0 and kept.exists() and report.bytes_still_needed > 0
    assert "every raw frame kept" in caplog.text


def test_a_stale_temp_file_is_removed(open_store: Callable[..., Store]) -> None:
    store = open_store()
    stale = keep_raw(store, "x", 0).with_name(".left-by-a-crash.tmp.tiff")
    stale.write_bytes(b"partial")
    os.utime(stale, (0, 0))
    apply_retention(store, RetentionPolicy(quota_bytes=10**9))
    assert not stale.exists()


def test_a_write_over_the_quota_counts_the_raw_frames(open_store: Callable[..., Store]) -> None:
    """Raw calibration frames alone can push the log over its quota: the next frame written
    then deletes the oldest unnamed raw frame, without anyone calling apply_retention."""
    first = open_store()
    add(first, 7, "clean", 0)
    size = first.images_bytes
    older, newer = keep_raw(first, "raw-a", 0), keep_raw(first, "raw-b", 1)
    first.close()
    store = open_store(retention=RetentionPolicy(quota_bytes=2 * size + 4000 + 10))
    add(store, 7, "clean", 5)  # the same pixels: the same size again
    assert not older.exists() and newer.exists()
    assert len(store.list_frames()) == 2
