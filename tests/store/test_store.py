"""The Store facade: durable frames, results and decisions, and the reads over them."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from edge.errors import BadInputError
from edge.frames import Result
from edge.store import FrameNotFoundError, ImageMissingError, Store, StoreCorruptError
from edge.store.images import encode_frame

from .conftest import dual_frame, rgb_frame, screened

REPO = Path(__file__).resolve().parents[2]


def test_after_add_frame_returns_files_and_row_are_on_disk(
    tmp_path: Path, open_store: Callable[..., Store]
) -> None:
    store = open_store()
    frame = dual_frame(1)
    stored = store.add_frame(
        frame, source="serial", bag="B1", lane=2, view="top", scanner_frame_id="S-9",
        metadata={"energy_kv": [80, 140]},
    )  # fmt: skip
    assert re.fullmatch(r"f-\d{8}-\d{6}", stored.id)
    encoded = encode_frame(frame)
    for relative, data in zip(stored.image_paths, encoded.files.values(), strict=True):
        assert (tmp_path / "data" / relative).read_bytes() == data
    day_dir = (tmp_path / "data" / stored.image_paths[0]).parent
    assert sorted(p.name for p in day_dir.iterdir()) == [
        f"{stored.id}_high.png",
        f"{stored.id}_low.png",
    ]  # no temp file left
    # A new connection (another process could use the same) sees the committed row.
    conn = sqlite3.connect(tmp_path / "data" / "edge.db")
    row = conn.execute(
        "SELECT bag, lane, view, scanner_frame_id, width, height, channels, sha256, bytes, "
        "metadata FROM frames WHERE id = ?",
        [stored.id],
    ).fetchone()
    conn.close()
    assert row[:6] == ("B1", 2, "top", "S-9", 32, 24)
    assert json.loads(row[6]) == ["high", "low"]
    assert row[7] == encoded.sha256 and row[8] == encoded.nbytes
    assert json.loads(row[9]) == {"energy_kv": [80, 140]}


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_file_fsync_rename_dir_fsync_come_before_the_commit(tmp_path: Path) -> None:
    """The durability order, seen in the system calls of a real process."""
    script = (
        "import sys, numpy as np\n"
        "from edge.frames import Frame\n"
        "from edge.store import Store\n"
        "with Store(sys.argv[1]) as s:\n"
        "    rng = np.random.default_rng(0)\n"
        "    s.add_frame(Frame(high=rng.integers(0, 9, (8, 8), dtype=np.uint16),"
        " low=rng.integers(0, 9, (8, 8), dtype=np.uint16)))\n"
        "    print('ADDED', flush=True)\n"
    )
    data = tmp_path / "data"
    Store(data).close()  # schema and directories first: trace only the frame's write
    trace = tmp_path / "trace.txt"
    run = subprocess.run(
        ["strace", "-f", "-y", "-o", str(trace), "-e", "trace=fsync,fdatasync,rename,renameat,renameat2",
         sys.executable, "-c", script, str(data)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    if run.returncode != 0 and "ptrace" in run.stderr:
        pytest.skip(f"strace cannot trace here: {run.stderr.strip()[:200]}")
    assert run.returncode == 0, run.stderr
    calls = [line.split(None, 1)[1] for line in trace.read_text().splitlines() if " " in line]
    renames = [i for i, c in enumerate(calls) if c.startswith("rename") and ".tmp" in c]
    assert len(renames) == 2
    wal_syncs = [
        i for i, c in enumerate(calls) if re.match(r"f(data)?sync\(\d+<.*edge\.db-wal>", c)
    ]
    # The commit: the first sync of the WAL after the files are in place.
    commit = min((i for i in wal_syncs if i > max(renames)), default=None)
    assert commit is not None, "\n".join(calls)
    for i in renames:
        temp = re.search(r"<([^>]*\.tmp)>|\"([^\"]*\.tmp)\"", calls[i])
        assert temp is not None
        temp_path = temp.group(1) or temp.group(2)
        synced = [
            j for j, c in enumerate(calls) if re.match(rf"fsync\(\d+<{re.escape(temp_path)}>", c)
        ]
        assert synced and synced[0] < i, f"temp file not fsync'd before its rename: {calls[i]}"
        directory = os.path.dirname(temp_path)
        dir_syncs = [
            j for j, c in enumerate(calls) if re.match(rf"fsync\(\d+<{re.escape(directory)}>\)", c)
        ]
        assert any(i < j < commit for j in dir_syncs), "directory not fsync'd before the commit"


def test_add_frame_async_resolves_once_durable_in_submission_order(
    tmp_path: Path, open_store: Callable[..., Store]
) -> None:
    store = open_store()
    futures = [store.add_frame_async(dual_frame(i), bag=f"A{i}") for i in range(5)]
    stored = [future.result(timeout=30) for future in futures]
    assert [s.bag for s in stored] == [f"A{i}" for i in range(5)]
    assert [s.id for s in stored] == sorted(s.id for s in stored)
    assert all((tmp_path / "data" / p).is_file() for s in stored for p in s.image_paths)


def test_frame_ids_are_unique_across_restarts_and_retention(
    open_store: Callable[..., Store],
) -> None:
    day = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    store = open_store()
    first = [store.add_frame(dual_frame(i), received=day).id for i in range(3)]
    assert first == [f"f-20261127-00000{i}" for i in (1, 2, 3)]
    store.submit_write(lambda db: store.delete_frames(db, [first[-1]])).result()
    store.close()
    store = open_store()
    again = store.add_frame(dual_frame(9), received=day + timedelta(hours=1)).id
    assert again == "f-20261127-000004"  # the deleted 000003 is not reused
    next_day = store.add_frame(dual_frame(9), received=day + timedelta(days=1)).id
    assert next_day == "f-20261128-000001"


def test_results_and_decisions(open_store: Callable[..., Store]) -> None:
    store = open_store()
    frame_id = store.add_frame(dual_frame(1), bag="B1").id
    stored = store.add_result(frame_id, screened(True), "ab" * 32, ["gun", "knife"])
    assert (stored.state, stored.alarm, stored.model_name, stored.model_version) == (
        "SCREENED", True, "tiny", "0.1.0",
    )  # fmt: skip
    assert stored.detections == [
        {"class": "gun", "class_id": 0, "score": 0.91, "box": [2.0, 3.0, 12.5, 20.0]}
    ]
    store.add_decision(frame_id, "clear", user="op1", note="laptop")
    got = store.get_frame(frame_id)
    assert got.result is not None and got.result.model == "tiny@0.1.0"
    assert got.result.model_sha256 == "ab" * 32 and got.result.timings_ms == {"infer": 12.5}
    assert (got.alarm, got.decision, got.disputed) == (True, "clear", True)
    assert [d.user for d in got.decisions] == ["op1"]
    # Not screened: alarm is NULL, the reason kept.
    other = store.add_frame(dual_frame(2)).id
    store.add_result(other, Result.not_screened("detector timed out", "tiny@0.1.0"))
    ns = store.get_frame(other)
    assert ns.state == "NOT_SCREENED" and ns.alarm is None
    assert ns.result is not None and ns.result.reason == "detector timed out"
    with pytest.raises(BadInputError, match="expected one of clear, search, threat"):
        store.add_decision(frame_id, "maybe")
    with pytest.raises(FrameNotFoundError):
        store.add_result("f-20000101-000001", screened(False))
    with pytest.raises(FrameNotFoundError):
        store.get_frame("f-20000101-000001")


def test_list_frames_filters_by_time_alarm_and_screening(open_store: Callable[..., Store]) -> None:
    store = open_store()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [store.add_frame(dual_frame(i), received=t0 + timedelta(minutes=i)).id for i in range(6)]
    store.add_result(ids[0], screened(True))
    store.add_result(ids[1], screened(False))
    store.add_result(ids[2], Result.not_screened("crash"))
    store.add_result(ids[3], screened(False))
    store.add_decision(ids[3], "search")  # disputed: clear by the model, searched by the operator

    def listed(**filters: object) -> list[str]:
        return [f.id for f in store.list_frames(**filters)]  # type: ignore[arg-type]

    assert listed() == ids[::-1]
    assert listed(alarm=True) == [ids[0]]
    assert listed(alarm=False) == [ids[3], ids[1]]
    assert listed(not_screened=True) == [ids[5], ids[4], ids[2]]
    assert listed(disputed=True) == [ids[3]]
    assert listed(since=t0 + timedelta(minutes=2), until="2026-01-01T00:04:00Z") == [ids[3], ids[2]]
    assert listed(limit=2, offset=1) == [ids[4], ids[3]]
    assert listed(newest_first=False, limit=2) == ids[:2]
    assert store.count_frames(not_screened=True) == 3
    with pytest.raises(BadInputError):
        store.list_frames(limit=-1)


def test_load_image_returns_the_pixels_and_checks_them(
    tmp_path: Path, open_store: Callable[..., Store]
) -> None:
    store = open_store()
    frame, colour = dual_frame(1), rgb_frame(2)
    dual_id = store.add_frame(frame, bag="B7").id
    rgb_id = store.add_frame(colour).id
    back = store.load_image(dual_id)
    assert np.array_equal(back.high, frame.high) and np.array_equal(back.low, frame.low)
    assert back.meta["frame_id"] == dual_id and back.meta["bag"] == "B7"
    assert np.array_equal(store.load_image(rgb_id).rgb, colour.rgb)
    (tmp_path / "data" / store.get_frame(dual_id).image_paths[1]).unlink()
    with pytest.raises(ImageMissingError, match="missing"):
        store.load_image(dual_id)


def test_concurrent_writers_all_land_with_unique_ids(open_store: Callable[..., Store]) -> None:
    store = open_store()
    ids: list[str] = []
    lock = threading.Lock()

    def add(seed: int) -> None:
        for i in range(5):
            frame_id = store.add_frame(dual_frame(seed * 10 + i), bag=f"T{seed}").id
            with lock:
                ids.append(frame_id)

    threads = [threading.Thread(target=add, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 20
    assert store.count_frames() == 20


def test_a_corrupt_database_refuses_to_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "edge.db").write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(StoreCorruptError, match="edge.db"):
        Store(data)


def test_a_damaged_page_fails_quick_check(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Store(data) as store:
        for i in range(40):
            store.add_frame(dual_frame(i), metadata={"pad": "x" * 400})
    db_path = data / "edge.db"
    raw = bytearray(db_path.read_bytes())
    page = 4096
    for offset in range(
        2 * page, len(raw) - page, page
    ):  # scramble every b-tree page past the root
        raw[offset + 8 : offset + 60] = bytes(range(100, 152))
    db_path.write_bytes(bytes(raw))
    with pytest.raises(StoreCorruptError, match="quick_check failed") as caught:
        Store(data)
    assert len(str(caught.value)) < 600  # a readable message, not every broken cell


def test_a_second_process_cannot_open_a_data_directory_in_use(tmp_path: Path) -> None:
    import subprocess
    import sys

    from edge.store import Store as RealStore

    with RealStore(tmp_path / "data"):
        probe = subprocess.run(
            [sys.executable, "-c", f"from edge.store import Store; Store({str(tmp_path / 'data')!r})"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert probe.returncode != 0
        assert "StoreBusyError" in probe.stderr and "in use by edge process" in probe.stderr
    # Released on close: the next opener gets it.
    RealStore(tmp_path / "data").close()
