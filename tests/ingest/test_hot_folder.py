"""Hot folder: complete files only, pairs together, processed/rejected with reasons."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import BadInputError
from edge.frames import Frame
from edge.ingest.hot_folder import HotFolder, is_candidate, pair_partner
from edge.ingest.images import save_dual_energy_png

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "dicos"


class Sink:
    def __init__(self, fail: bool = False) -> None:
        self.frames: list[tuple[Frame, list[str]]] = []
        self.fail = fail

    def __call__(self, frame: Frame, files: list[Path]) -> None:
        if self.fail:
            raise BadInputError("store refused the frame")
        self.frames.append((frame, [f.name for f in files]))


def write_rgb(path: Path) -> None:
    assert cv2.imwrite(str(path), np.full((40, 60, 3), 90, np.uint8))


@pytest.mark.parametrize(
    ("name", "candidate"),
    [
        ("bag.png", True),
        ("bag.dcs", True),
        ("bag.TIFF", True),
        (".bag.png", False),
        ("bag.png.part", False),
        ("bag.tmp", False),
        ("notes.txt", False),
    ],
)
def test_candidates(name: str, candidate: bool) -> None:
    assert is_candidate(Path(name)) is candidate


def test_pair_partner() -> None:
    assert pair_partner(Path("/x/a_high.png")) == Path("/x/a_low.png")
    assert pair_partner(Path("/x/a_low.png")) == Path("/x/a_high.png")
    assert pair_partner(Path("/x/a.png")) is None


def test_file_is_taken_only_once_settled(tmp_path: Path) -> None:
    sink = Sink()
    folder = HotFolder(tmp_path, sink, settle_s=2.0)
    folder.start()
    folder.stop()
    write_rgb(tmp_path / "bag1.png")
    assert folder.scan_once(now=100.0) == 0  # first sight
    assert folder.scan_once(now=101.0) == 0  # not settled yet
    assert folder.scan_once(now=102.5) == 1
    assert [names for _, names in sink.frames] == [["bag1.png"]]
    assert (tmp_path / "processed" / "bag1.png").exists() and not (tmp_path / "bag1.png").exists()


def test_a_growing_file_waits(tmp_path: Path) -> None:
    sink = Sink()
    folder = HotFolder(tmp_path, sink, settle_s=1.0)
    (tmp_path / "processed").mkdir()
    target = tmp_path / "bag.png"
    target.write_bytes(b"\x89PNG\r\n")
    folder.scan_once(now=0.0)
    write_rgb(target)  # the scanner is still writing: size changes
    assert folder.scan_once(now=1.5) == 0
    assert folder.scan_once(now=3.0) == 1


def test_pair_waits_for_both_halves(tmp_path: Path) -> None:
    sink = Sink()
    folder = HotFolder(tmp_path, sink, settle_s=0)
    (tmp_path / "processed").mkdir()
    high = np.full((30, 50), 40000, np.uint16)
    low = np.full((30, 50), 30000, np.uint16)
    save_dual_energy_png(tmp_path / "bag", high, low)
    partner = tmp_path / "bag_low.png"
    held = tmp_path / "held.bin"
    shutil.move(partner, held)
    assert folder.scan_once(now=0.0) == 0
    shutil.move(held, partner)
    assert folder.scan_once(now=1.0) == 1
    frame, names = sink.frames[0]
    assert names == ["bag_high.png", "bag_low.png"]
    assert frame.low is not None and int(frame.low[0, 0]) == 30000


def test_dicos_file_is_ingested(tmp_path: Path) -> None:
    sink = Sink()
    folder = HotFolder(tmp_path, sink, settle_s=0, keep_processed=False)
    shutil.copy(FIXTURES / "SimpleProcessingDX.dcs", tmp_path / "scan.dcs")
    assert folder.scan_once(now=0.0) == 1
    assert not (tmp_path / "scan.dcs").exists()  # deleted, not kept
    assert sink.frames[0][0].meta["format"] == "dicos"


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, b"\x89PNG\r\n\x1a\n broken"])
def test_unreadable_files_go_to_rejected_with_a_reason(tmp_path: Path, content: bytes) -> None:
    sink = Sink()
    folder = HotFolder(tmp_path, sink, settle_s=0)
    folder.start()
    folder.stop()
    (tmp_path / "bad.png").write_bytes(content)
    write_rgb(tmp_path / "good.png")
    assert folder.scan_once(now=0.0) == 1
    assert (tmp_path / "rejected" / "bad.png").read_bytes() == content
    reason = (tmp_path / "rejected" / "bad.png.reason.txt").read_text()
    assert "bad.png" in reason
    assert folder.stats.rejected == 1 and folder.stats.taken == 1


def test_a_sink_refusal_rejects_and_keeps_the_file(tmp_path: Path) -> None:
    folder = HotFolder(tmp_path, Sink(fail=True), settle_s=0)
    folder.start()
    folder.stop()
    write_rgb(tmp_path / "bag.png")
    folder.scan_once(now=0.0)
    assert (tmp_path / "rejected" / "bag.png").exists()
    assert "store refused" in (tmp_path / "rejected" / "bag.png.reason.txt").read_text()


def test_the_thread_takes_files(tmp_path: Path) -> None:
    import time

    sink = Sink()
    folder = HotFolder(tmp_path, sink, settle_s=0.2, poll_s=0.05)
    folder.start()
    try:
        write_rgb(tmp_path / "bag.png")
        deadline = time.monotonic() + 10
        while not sink.frames and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        folder.stop()
    assert len(sink.frames) == 1


def test_a_reused_name_never_overwrites_earlier_files(tmp_path: Path) -> None:
    folder = HotFolder(tmp_path, Sink(), settle_s=0)
    folder.start()
    folder.stop()
    for round_ in range(2):
        (tmp_path / "bad.png").write_bytes(b"junk%d" % round_)
        folder.scan_once(now=float(round_))
    assert (tmp_path / "rejected" / "bad.png").read_bytes() == b"junk0"
    assert (tmp_path / "rejected" / "bad.1.png").read_bytes() == b"junk1"
    assert (tmp_path / "rejected" / "bad.1.png.reason.txt").exists()
