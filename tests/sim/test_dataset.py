"""The simulated COCO data set: loads in pycocotools, files match records, 16-bit pairs."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
from pycocotools.coco import COCO

from edge.ingest.images import load_image
from edge.sim.dataset import write_dataset
from edge.sim.scene import simulate_bag
from edge.sim.shapes import CLASSES


def test_dataset_loads_in_pycocotools_and_matches_the_simulator(tmp_path: Path) -> None:
    summary = write_dataset(tmp_path, count=6, seed=40, threat_ratio=0.5)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tmp_path / "annotations.json"))
    assert len(coco.getImgIds()) == summary.images == 6
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == CLASSES
    assert len(coco.getAnnIds()) == summary.annotations
    for image in coco.loadImgs(coco.getImgIds()):
        sim = simulate_bag(image["sim_seed"], threat_ratio=0.5)
        rgb = cv2.imread(str(tmp_path / image["file_name"]))
        assert rgb.shape == (image["height"], image["width"], 3)
        frame = load_image(tmp_path / image["dual_energy"]["high"])
        assert frame.low is not None and frame.high is not None
        assert np.array_equal(frame.high, sim.high) and np.array_equal(frame.low, sim.low)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        assert len(anns) == len(sim.annotations)
        for ann, truth in zip(anns, sim.annotations, strict=True):
            x, y, w, h = ann["bbox"]
            assert (x, y, x + w, y + h) == truth.box
            assert coco.loadCats(ann["category_id"])[0]["name"] == truth.label
        assert set(image["attributes"]) >= {"clutter", "occluded", "rotation", "size", "view"}


def test_dataset_is_deterministic(tmp_path: Path) -> None:
    write_dataset(tmp_path / "a", count=2, seed=7)
    write_dataset(tmp_path / "b", count=2, seed=7)
    a = json.loads((tmp_path / "a" / "annotations.json").read_text())
    b = json.loads((tmp_path / "b" / "annotations.json").read_text())
    assert a == b
