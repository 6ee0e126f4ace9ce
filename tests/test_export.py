"""Export for labelling: a real image log of simulated bags, exported and read back with
pycocotools; no room made real with small tmpfs mounts."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from edge.errors import BadInputError
from edge.export import ExportError, ExportSummary, export_dataset
from edge.frames import Detections, Frame, Result, ScreeningState
from edge.ingest.images import load_image
from edge.pseudocolor import render_pseudocolor
from edge.sim.scene import simulate_bag
from edge.store import Store

TINY = "tiny@0.1.0"
TINY_CLASSES = ["gun", "knife", "blade", "scissors", "bottle"]
OTHER = "other@2.0"
OTHER_CLASSES = ["laptop", "knife"]
MODEL_CLASSES = {TINY: TINY_CLASSES, OTHER: OTHER_CLASSES}
START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "models" / "demo-xray-det"


@dataclass(frozen=True)
class Plan:
    """One logged frame: the model's verdict (None: no result yet, "NS": NOT SCREENED,
    else the detected classes) and the operator's decision."""

    detected: tuple[str, ...] | str | None
    decision: str | None = None
    model: str = TINY
    rgb_only: bool = False


PLANS = [
    Plan((), "clear"),
    Plan(("gun",), "threat"),
    Plan(("knife",), "clear"),  # disputed: alarm, operator cleared
    Plan((), "search"),  # disputed: no alarm, operator searched
    Plan("NS"),
    Plan(("gun", "knife")),
    Plan(None),
    Plan(("bottle",), "clear"),  # disputed
    Plan(()),
    Plan(("laptop", "knife"), "threat", model=OTHER),
    Plan(("gun",), "threat", rgb_only=True),
    Plan(("scissors",), "threat"),  # its files are deleted: skipped as missing
]
DISPUTED = {2, 3, 7}
MISSING = 11


def result_for(plan: Plan) -> Result | None:
    if plan.detected is None:
        return None
    if plan.detected == "NS":
        return Result.not_screened("detector deadline 2.0 s exceeded", plan.model)
    classes = MODEL_CLASSES[plan.model]
    n = len(plan.detected)
    boxes = np.array([[10.0 + 20 * k, 12.0, 40.5 + 20 * k, 50.0] for k in range(n)], np.float32)
    ids = np.array([classes.index(c) for c in plan.detected], np.int64)
    return Result(
        ScreeningState.SCREENED,
        Detections(boxes, np.linspace(0.9, 0.5, n, dtype=np.float32), ids),
        plan.model,
    )


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, list[str]]]:
    """A store of PLANS (simulated bags, downsampled 4x), and the frame ids in plan order."""
    data = tmp_path_factory.mktemp("log") / "data"
    bags = [simulate_bag(seed, threat_ratio=0.5) for seed in range(3)]
    store = Store(data)
    ids = []
    for i, plan in enumerate(PLANS):
        bag = bags[i % len(bags)]
        high = np.ascontiguousarray(bag.high[::4, ::4]) + np.uint16(i)
        low = np.ascontiguousarray(bag.low[::4, ::4])
        frame = Frame(rgb=render_pseudocolor(high, low)) if plan.rgb_only else Frame(high, low)
        stored = store.add_frame(
            frame,
            source="serial:/dev/ttyUSB0",
            bag=f"B{i:03d}",
            lane=1 + i % 2,
            view=bag.attributes["view"],
            metadata={"clutter": bag.attributes["clutter"], "energy_kv": [80, 140]},
            received=START + timedelta(minutes=10 * i),
        )
        result = result_for(plan)
        if result is not None:
            sha = hashlib.sha256(plan.model.encode()).hexdigest()
            store.add_result(stored.id, result, sha, MODEL_CLASSES[plan.model])
        if plan.decision is not None:
            store.add_decision(stored.id, plan.decision, user="op1")
        ids.append(stored.id)
    for relative in store.get_frame(ids[MISSING]).image_paths:
        (data / relative).unlink()
    yield store, ids
    store.close()


def store_selection(store: Store, **flags: Any) -> list[str]:
    """Frame ids the store lists for an export's filters, ORing alarm/not-screened/disputed."""
    window = {k: flags.pop(k) for k in ("since", "until") if k in flags}
    queries = [{k: True} for k in ("alarm", "not_screened", "disputed") if flags.get(k)] or [{}]
    found = {f.id for q in queries for f in store.list_frames(**window, **q, limit=1000)}
    return sorted(found)


def export(store: Store, out: Path, **options: Any) -> tuple[ExportSummary, COCO, dict[str, Any]]:
    summary = export_dataset(store, out, model_classes=MODEL_CLASSES, **options)
    with contextlib.redirect_stdout(None):  # COCO() prints progress
        coco = COCO(str(out / "annotations.json"))
    return summary, coco, json.loads((out / "manifest.json").read_text())


def detection_count(store: Store, frame_id: str) -> int:
    result = store.get_frame(frame_id).result
    return 0 if result is None else len(result.detections)


def exported_frame_ids(coco: COCO) -> list[str]:
    return [coco.imgs[i]["attributes"]["frame_id"] for i in sorted(coco.imgs)]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"alarms": True},
        {"disputed": True},
        {"alarms": True, "not_screened": True},
        {"since": "2025-03-01T08:15:00Z", "until": "2025-03-01T09:25Z"},
        {"alarms": True, "disputed": True, "until": START + timedelta(minutes=75)},
    ],
    ids=["all", "alarms", "disputed", "alarms-or-not-screened", "window", "alarms-or-disputed"],
)
def test_filtered_export_reloads_with_pycocotools_and_matches_the_store(
    log: tuple[Store, list[str]], tmp_path: Path, options: dict[str, Any]
) -> None:
    store, ids = log
    summary, coco, manifest = export(store, tmp_path / "out", **options)

    flags = {("alarm" if k == "alarms" else k): v for k, v in options.items()}
    selected = store_selection(store, **flags)
    expected = [i for i in selected if i != ids[MISSING]]
    assert sorted(exported_frame_ids(coco)) == expected
    detections = sum(detection_count(store, i) for i in expected)
    assert len(coco.getAnnIds()) == detections == summary.annotations
    assert manifest["counts"]["images"] == summary.images == len(expected)
    assert manifest["counts"]["annotations"] == detections
    assert manifest["counts"]["skipped"]["missing_image"] == int(ids[MISSING] in selected)
    assert manifest["filters"] == summary.filters
    # Every file is listed with its hash, and nothing else lies in the export.
    files = {p.relative_to(summary.out).as_posix() for p in summary.out.rglob("*") if p.is_file()}
    assert files == {*manifest["files"], "manifest.json"}
    for relative, digest in manifest["files"].items():
        assert hashlib.sha256((summary.out / relative).read_bytes()).hexdigest() == digest
    manifest_sha = hashlib.sha256((summary.out / "manifest.json").read_bytes()).hexdigest()
    assert manifest_sha == summary.manifest_sha256
    assert not list(tmp_path.glob("*.partial-*"))
    row = (
        sqlite3.connect(store.db_path)
        .execute(
            "SELECT path, frames, manifest_sha256, filters FROM exports WHERE id = ?",
            [summary.export_id],
        )
        .fetchone()
    )
    assert row[:3] == (str(summary.out), len(expected), manifest_sha)
    assert json.loads(row[3]) == summary.filters


def test_disputed_frames_come_first_oldest_first(
    log: tuple[Store, list[str]], tmp_path: Path
) -> None:
    store, ids = log
    summary, coco, manifest = export(store, tmp_path / "out")
    order = exported_frame_ids(coco)
    disputed = [ids[i] for i in sorted(DISPUTED)]
    assert order[: len(disputed)] == disputed
    assert order[len(disputed) :] == [
        ids[i] for i in range(len(PLANS)) if i not in DISPUTED and i != MISSING
    ]
    flags = [coco.imgs[i]["attributes"]["disputed"] for i in sorted(coco.imgs)]
    assert flags == [True] * len(disputed) + [False] * (len(order) - len(disputed))
    assert summary.disputed == manifest["counts"]["disputed"] == len(DISPUTED)


def test_images_carry_pre_annotations_and_slice_attributes(
    log: tuple[Store, list[str]], tmp_path: Path
) -> None:
    store, ids = log
    summary, coco, manifest = export(store, tmp_path / "out")
    # The first model's classes in its order, then the other model's new ones.
    assert [(c["id"], c["name"]) for c in coco.dataset["categories"]] == list(
        enumerate([*TINY_CLASSES, "laptop"], start=1)
    )
    by_frame = {img["attributes"]["frame_id"]: img for img in coco.dataset["images"]}
    names = {c["id"]: c["name"] for c in coco.dataset["categories"]}
    for i, plan in enumerate(PLANS):
        if i == MISSING:
            assert ids[i] not in by_frame
            continue
        image = by_frame[ids[i]]
        stored = store.get_frame(ids[i])
        attributes = image["attributes"]
        assert (image["width"], image["height"]) == (stored.width, stored.height)
        assert attributes["bag"] == f"B{i:03d}" and attributes["lane"] == 1 + i % 2
        assert attributes["source"] == "serial:/dev/ttyUSB0"
        assert attributes["received"] == stored.received
        assert attributes["clutter"] in ("low", "medium", "high")
        assert attributes["decision"] == plan.decision
        assert attributes["disputed"] is (i in DISPUTED)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        if plan.detected is None:
            assert attributes["model"] is None and attributes["state"] is None and not anns
            continue
        assert attributes["model"] == plan.model
        assert attributes["model_sha256"] == hashlib.sha256(plan.model.encode()).hexdigest()
        if plan.detected == "NS":
            assert attributes["state"] == "NOT_SCREENED" and attributes["alarm"] is None
            assert attributes["reason"] == "detector deadline 2.0 s exceeded" and not anns
            continue
        assert attributes["state"] == "SCREENED"
        assert attributes["alarm"] is (len(plan.detected) > 0)
        assert [names[a["category_id"]] for a in anns] == list(plan.detected)
        for ann, det in zip(anns, stored.result.detections, strict=True):  # type: ignore[union-attr]
            x1, y1, x2, y2 = det["box"]
            assert ann["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1])
            assert ann["score"] == det["score"] and ann["pre_annotation"] is True
    assert manifest["counts"]["per_class"] == {"gun": 3, "knife": 3, "bottle": 1, "laptop": 1}
    assert manifest["software"]["name"] == "edge-xray" and manifest["software"]["version"]


def test_sixteen_bit_files_equal_the_stored_pixels(
    log: tuple[Store, list[str]], tmp_path: Path
) -> None:
    store, ids = log
    summary, coco, _ = export(store, tmp_path / "out")
    seen_dual = seen_rgb = 0
    for image in coco.dataset["images"]:
        stored = store.load_image(image["attributes"]["frame_id"])
        colour = cv2.imread(str(summary.out / image["file_name"]), cv2.IMREAD_COLOR)
        assert colour.shape == (image["height"], image["width"], 3)
        if stored.high is None:  # an 8-bit source: its pixels are the file_name image
            assert "dual_energy" not in image
            assert np.array_equal(cv2.cvtColor(colour, cv2.COLOR_BGR2RGB), stored.rgb)
            seen_rgb += 1
            continue
        files = image["dual_energy"]
        high = cv2.imread(str(summary.out / files["high"]), cv2.IMREAD_UNCHANGED)
        low = cv2.imread(str(summary.out / files["low"]), cv2.IMREAD_UNCHANGED)
        assert high.dtype == np.uint16 and np.array_equal(high, stored.high)
        assert low.dtype == np.uint16 and np.array_equal(low, stored.low)
        assert np.array_equal(
            colour, cv2.cvtColor(render_pseudocolor(high, low), cv2.COLOR_RGB2BGR)
        )
        seen_dual += 1
    assert (seen_dual, seen_rgb) == (len(PLANS) - 2, 1)
    # The appliance's own loader takes the exported pair back as one frame.
    first = coco.dataset["images"][0]
    again = load_image(summary.out / first["dual_energy"]["high"])
    assert again.high is not None and again.low is not None


def test_class_filter_keeps_frames_that_detected_the_class(
    log: tuple[Store, list[str]], tmp_path: Path
) -> None:
    store, ids = log
    _, coco, manifest = export(store, tmp_path / "out", class_name="knife")
    expected = [
        ids[i] for i, p in enumerate(PLANS) if p.detected != "NS" and "knife" in (p.detected or ())
    ]
    assert sorted(exported_frame_ids(coco)) == sorted(expected) and len(expected) == 3
    assert manifest["filters"]["class"] == "knife"
    _, coco, _ = export(store, tmp_path / "none", class_name="grenade")
    assert coco.dataset["images"] == [] and coco.dataset["annotations"] == []


def test_sample_is_deterministic_for_a_seed_and_drawn_from_the_selection(
    log: tuple[Store, list[str]], tmp_path: Path
) -> None:
    store, ids = log
    draws = {}
    for n, seed in enumerate([1, 1, 2, 3]):
        _, coco, manifest = export(store, tmp_path / f"s{n}", alarms=True, sample=3, seed=seed)
        draws[n] = exported_frame_ids(coco)
        assert manifest["filters"]["sample"] == 3 and manifest["filters"]["seed"] == seed
    alarmed = set(store_selection(store, alarm=True)) - {ids[MISSING]}
    assert draws[0] == draws[1]
    assert len({tuple(sorted(d)) for d in draws.values()}) > 1  # other seeds, other frames
    for drawn in draws.values():
        assert len(drawn) == 3 and set(drawn) <= alarmed
    _, coco, _ = export(store, tmp_path / "all", alarms=True, sample=100)
    assert set(exported_frame_ids(coco)) == alarmed
    with pytest.raises(BadInputError, match="sample: expected a frame count >= 1, got 0"):
        export_dataset(store, tmp_path / "zero", sample=0)


@contextlib.contextmanager
def small_drive(where: Path, options: str) -> Iterator[Path]:
    """A real tmpfs mounted at `where` (we run as root); unmounted after."""
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.fail(
            f"cannot mount a tmpfs for the no-room test (needs root and mount): "
            f"{mounted.stderr.strip()}"
        )
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def export_rows(store: Store) -> int:
    return int(sqlite3.connect(store.db_path).execute("SELECT count(*) FROM exports").fetchone()[0])


def test_export_to_a_drive_without_room_is_refused_and_leaves_nothing(
    log: tuple[Store, list[str]], tmp_path: Path
) -> None:
    store, _ = log
    before = export_rows(store)
    with small_drive(tmp_path / "usb", "size=1m") as usb:
        with pytest.raises(ExportError, match=r"needs about \d+ bytes .* \d+ bytes .* free"):
            export_dataset(store, usb / "export", model_classes=MODEL_CLASSES)
        assert list(usb.iterdir()) == []
    assert export_rows(store) == before


def test_running_out_of_room_midway_removes_the_partial_export(
    log: tuple[Store, list[str]], tmp_path: Path
) -> None:
    """Bytes to spare but only a few inodes: the estimate passes and the writes then fail
    with ENOSPC part-way, as on a drive that fills while the export runs."""
    store, _ = log
    before = export_rows(store)
    with small_drive(tmp_path / "usb", "size=64m,nr_inodes=12") as usb:
        with pytest.raises(ExportError, match="no space left"):
            export_dataset(store, usb / "export", model_classes=MODEL_CLASSES)
        assert list(usb.iterdir()) == []
    assert export_rows(store) == before


def test_out_that_is_not_empty_is_refused_and_untouched(
    log: tuple[Store, list[str]], tmp_path: Path
) -> None:
    store, _ = log
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    with pytest.raises(ExportError, match="exists and is not empty"):
        export_dataset(store, out)
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    with pytest.raises(ExportError, match="does not exist"):
        export_dataset(store, tmp_path / "not-mounted" / "export")
    assert not (tmp_path / "not-mounted").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    summary = export_dataset(store, empty, until=START + timedelta(minutes=5))
    assert summary.images == 1 and (empty / "annotations.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "out"]


def edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_cli_export_prints_one_json_document(tmp_path: Path) -> None:
    shipped = json.loads((SHIPPED_MODEL / "manifest.json").read_text())
    data = tmp_path / "data"
    with Store(data) as store:
        for i in range(2):
            bag = simulate_bag(i, threats=["gun"] if i else [])
            stored = store.add_frame(Frame(bag.high[::8, ::8].copy(), bag.low[::8, ::8].copy()))
            boxes = np.array([[1, 2, 30, 40]] * i, np.float32)
            result = Result(
                ScreeningState.SCREENED,
                Detections(boxes, np.full(i, 0.8, np.float32), np.zeros(i, np.int64)),
                f"{shipped['name']}@{shipped['version']}",  # the default model: its classes
            )
            store.add_result(stored.id, result, "ab" * 32, shipped["classes"])
            store.add_decision(stored.id, "clear")
    proc = edge("export", "--data", str(data), "--out", str(tmp_path / "o"), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["images"], doc["annotations"], doc["disputed"]) == (2, 1, 1)
    assert doc["export_id"] == 1 and doc["per_class"] == {shipped["classes"][0]: 1}
    coco = json.loads((tmp_path / "o" / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == shipped["classes"]
    assert coco["images"][0]["attributes"]["disputed"] is True  # alarmed, operator cleared

    bad = edge("export", "--data", str(data), "--out", str(tmp_path / "b"), "--since", "yesterday")
    assert bad.returncode == 2 and "expected ISO 8601" in bad.stderr and bad.stdout == ""
    assert not (tmp_path / "b").exists()


def test_every_export_is_in_the_audit_log(log: tuple[Store, list[str]], tmp_path: Path) -> None:
    from edge.upgrade import audit

    store, _ = log
    before = len(audit.entries(store.data_dir))
    summary, _, _ = export(store, tmp_path / "audited", disputed=True, actor="user:vendor1")
    entries = audit.entries(store.data_dir)
    assert len(entries) == before + 1
    entry = entries[-1]  # oldest first
    assert (entry.action, entry.actor) == ("export", "user:vendor1")
    details = entry.details
    assert details["path"] == str(summary.out) and details["images"] == summary.images
    assert details["filters"]["disputed"] is True
    assert details["manifest_sha256"] == summary.manifest_sha256
    assert audit.verify(store.data_dir).ok
