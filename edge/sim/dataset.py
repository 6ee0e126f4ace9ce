"""Write simulated bags as a COCO data set (CONTRACT.md section 6)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from edge.ingest.images import save_dual_energy_png
from edge.pseudocolor import render_pseudocolor
from edge.sim.scene import SimFrame, simulate_bag
from edge.sim.shapes import CLASSES


@dataclass(frozen=True)
class DatasetSummary:
    path: Path
    images: int
    annotations: int
    threat_images: int


def coco_categories() -> list[dict[str, Any]]:
    return [
        {"id": i + 1, "name": name, "supercategory": "threat"} for i, name in enumerate(CLASSES)
    ]


def frame_record(
    frame: SimFrame, image_id: int, stem: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The COCO image record and its annotations (bbox xywh in frame pixels, 1-based classes)."""
    h, w = frame.high.shape
    image = {
        "id": image_id,
        "file_name": f"images/{stem}.png",
        "width": w,
        "height": h,
        "dual_energy": {"high": f"images/{stem}_high.png", "low": f"images/{stem}_low.png"},
        "attributes": dict(frame.attributes),
        "sim_seed": frame.seed,
    }
    annotations = []
    for a in frame.annotations:
        x1, y1, x2, y2 = a.box
        annotations.append(
            {
                "image_id": image_id,
                "category_id": CLASSES.index(a.label) + 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
                "iscrowd": 0,
                "attributes": dict(a.attributes),
            }
        )
    return image, annotations


def write_dataset(out: Path, count: int, seed: int, threat_ratio: float = 0.5) -> DatasetSummary:
    """Render `count` bags with seeds seed, seed+1, ... into `out` (annotations.json + images/)."""
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i in range(count):
        frame = simulate_bag(seed + i, threat_ratio=threat_ratio)
        stem = f"{i + 1:06d}"
        rgb = render_pseudocolor(frame.high, frame.low)
        if not cv2.imwrite(str(images_dir / f"{stem}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {images_dir / f'{stem}.png'}")
        save_dual_energy_png(images_dir / stem, frame.high, frame.low)
        record, anns = frame_record(frame, i + 1, stem)
        images.append(record)
        annotations.extend(anns)
    for k, ann in enumerate(annotations, start=1):
        ann["id"] = k
    doc = {
        "info": {
            "description": "edge simulated dual-energy bags",
            "seed": seed,
            "count": count,
            "threat_ratio": threat_ratio,
        },
        "images": images,
        "annotations": annotations,
        "categories": coco_categories(),
    }
    tmp = out / "annotations.json.tmp"
    with tmp.open("w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(out / "annotations.json")
    threat_images = sum(1 for im in images if im["attributes"]["threat"] != "none")
    return DatasetSummary(out, len(images), len(annotations), threat_images)
