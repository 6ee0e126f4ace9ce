"""The calibration set: a COCO data set folder (CONTRACT.md section 6; what `edge simulate
dataset` writes), read as bags and screened by a model at a low score floor.

Never a test set: a regression or acceptance suite (a folder with suite.json), a data set
folder inside one, or a copy of a data set of the device's regression suite (same
annotations.json SHA-256) is refused. A threshold tuned on the bags that later judge the
model would make that judgement meaningless.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.errors import CalibrationInputError
from edge.detector import Detector
from edge.ingest.images import load_image
from edge.validation.bags import BagOutcome
from edge.validation.coco import parse_ground_truth, read_json
from edge.validation.suite import ANNOTATIONS_FILE, SUITE_FILE, relative_path, sha256_file


@dataclass(frozen=True)
class CalibrationImage:
    file: Path
    channels: Path | None  # the `_high.png` of a 16-bit pair, when the record names one


@dataclass(frozen=True)
class CalibrationBag:
    key: str
    images: tuple[CalibrationImage, ...]
    classes: frozenset[str]  # threat classes in the bag (crowd regions not counted)


@dataclass(frozen=True)
class CalibrationSet:
    root: Path
    annotations_sha256: str
    bags: tuple[CalibrationBag, ...]

    @property
    def images(self) -> int:
        return sum(len(b.images) for b in self.bags)

    def as_json(self) -> dict[str, object]:
        return {
            "path": str(self.root),
            "annotations_sha256": self.annotations_sha256,
            "images": self.images,
            "bags": len(self.bags),
            "threat_bags": sum(1 for b in self.bags if b.classes),
            "clean_bags": sum(1 for b in self.bags if not b.classes),
        }


def refuse_test_sets(root: Path, device_suite: Path) -> None:
    """CalibrationInputError when `root` is, or is part or a copy of, a test suite."""
    root = root.resolve()
    for folder in (root, root.parent):
        if (folder / SUITE_FILE).is_file():
            which = "the device's regression suite" if _same(folder, device_suite) else "a suite"
            raise CalibrationInputError(
                f"{root}: refused as a calibration set: it is {'' if folder == root else 'in '}"
                f"{which} ({folder / SUITE_FILE}), a regression or acceptance test set; "
                "thresholds tuned on the bags that judge the model make the judgement "
                "meaningless. Calibrate on a separate data set (e.g. `edge simulate dataset`)"
            )
    annotations = root / ANNOTATIONS_FILE
    manifest = device_suite / SUITE_FILE
    if not annotations.is_file() or not manifest.is_file():
        return
    try:
        listed = json.loads(manifest.read_text(encoding="utf-8")).get("files", {})
    except (OSError, ValueError, AttributeError):
        return  # an unreadable device suite is the gate's problem, not calibration's
    digest = sha256_file(annotations)
    for rel, known in listed.items():
        if known == digest and rel.endswith(f"/{ANNOTATIONS_FILE}"):
            raise CalibrationInputError(
                f"{annotations}: refused as a calibration set: it is a copy of {rel} of the "
                f"device's regression suite ({device_suite}); calibrate on a separate data set"
            )


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def read_calibration_set(root: Path, bag_attribute: str | None = None) -> CalibrationSet:
    """The data set's bags: one per image record, or per value of the image attribute
    `bag_attribute` (views of one bag). CalibrationInputError or CocoDataError (exit 2)."""
    annotations = root / ANNOTATIONS_FILE
    if not annotations.is_file():
        raise CalibrationInputError(
            f"{root}: not a COCO data set (no {ANNOTATIONS_FILE}); make one with "
            "`edge simulate dataset` or `edge export`"
        )
    doc = read_json(annotations)
    gt = parse_ground_truth(doc, str(annotations))
    if not gt.images:
        raise CalibrationInputError(f"{annotations}: the data set holds no images")
    names = {c.id: c.name for c in gt.categories}
    truth: dict[int, set[str]] = {}
    for k in range(len(gt)):
        if not gt.iscrowd[k]:
            truth.setdefault(int(gt.image_ids[k]), set()).add(names[int(gt.category_ids[k])])
    grouped: dict[str, list[tuple[CalibrationImage, set[str]]]] = {}
    for i, record in enumerate(doc["images"]):
        at = f"{annotations}: images[{i}] (id {record['id']})"
        file = root / relative_path(record.get("file_name"), f"{at}: 'file_name'")
        pair = record.get("dual_energy")
        high = None
        if isinstance(pair, dict) and "high" in pair:
            high = root / relative_path(pair["high"], f"{at}: 'dual_energy.high'")
        for path in (file, high):
            if path is not None and not path.is_file():
                raise CalibrationInputError(f"{at}: {path}: file missing")
        attrs = record.get("attributes") or {}
        value = attrs.get(bag_attribute) if bag_attribute else None
        key = f"bag:{value}" if value is not None else f"image:{record['id']}"
        image = CalibrationImage(file, high)
        grouped.setdefault(key, []).append((image, truth.get(int(record["id"]), set())))
    bags = tuple(
        CalibrationBag(
            key, tuple(im for im, _ in items), frozenset(c for _, cs in items for c in cs)
        )
        for key, items in grouped.items()
    )
    return CalibrationSet(root, sha256_file(annotations), bags)


def screen(
    detector: Detector,
    calibration_set: CalibrationSet,
    progress: Callable[[int, int], None] | None = None,
) -> list[BagOutcome]:
    """Each bag's best score per class over its images (the detector keeps its low floor)."""
    classes = detector.class_names
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({c for b in calibration_set.bags for c in b.classes} - set(index))
    if unknown:
        raise CalibrationInputError(
            f"{calibration_set.root}: category {unknown[0]!r} is not a class of the model "
            f"(model classes: {', '.join(classes)})"
        )
    dual = detector.spec.manifest.input.representation == "dual_energy"
    outcomes = []
    total = len(calibration_set.bags)
    for done, bag in enumerate(calibration_set.bags, start=1):
        best = np.zeros(len(classes), np.float32)
        for image in bag.images:
            frame = load_image(image.channels if dual and image.channels else image.file)
            det = detector.detect(frame).detections
            np.maximum.at(best, det.class_ids, det.scores)
        outcomes.append(BagOutcome(frozenset(index[c] for c in bag.classes), best))
        if progress is not None:
            progress(done, total)
    return outcomes
