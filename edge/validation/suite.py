"""Regression suites: a folder of COCO data sets plus a policy, at one label version.

    SUITE/suite.json                 format, name, label_version, data sets, file hashes,
                                     history of earlier label versions
    SUITE/policy.toml                the gates (edge/validation/policy.py)
    SUITE/<data set>/annotations.json + the image files its records name

Loading validates everything and refuses with a message naming the file, record and field:
COCO errors (duplicate ids, unknown categories, boxes outside the image) come from
edge/validation/coco.py; here, image files that are missing, outside the suite or not
listed in suite.json, and annotation or policy files changed since the suite was made.
The suite's SHA-256 is that of its canonical suite.json, which lists every file's hash;
image files are checked against it as a run reads them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from edge.errors import BadInputError
from edge.ingest.images import dual_energy_paths
from edge.validation.coco import CocoGroundTruth, parse_ground_truth, read_json
from edge.validation.policy import Policy, parse_policy
from edge.validation.slices import (
    CLASS_DIM,
    SIZE_DIM,
    BagTruth,
    SliceSpec,
    size_bucket,
    text_attributes,
)

SUITE_FORMAT = "edge-suite/1"
SUITE_FILE = "suite.json"
POLICY_FILE = "policy.toml"
ANNOTATIONS_FILE = "annotations.json"


class SuiteError(BadInputError):
    """A suite folder that cannot be used as given; the message names file and field."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_json(doc: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8, no NaN: the bytes hashes are taken over."""
    return json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def relative_path(text: Any, where: str) -> PurePosixPath:
    """A path inside the suite (posix, relative, no '..'), or SuiteError."""
    if not isinstance(text, str) or not text:
        raise SuiteError(f"{where}: expected a relative file path, got {text!r}")
    path = PurePosixPath(text)
    if path.is_absolute() or ".." in path.parts or "\\" in text:
        raise SuiteError(f"{where}: {text!r} must be a relative path inside the suite")
    return path


@dataclass(frozen=True)
class SuiteImage:
    """One image: `ref` is its file's path in the suite ("sim/images/000001.png"), what
    reports name; `channels` the 16-bit (high, low) pair when the record names one."""

    ref: str
    dataset: str
    image_id: int
    file: Path
    channels: tuple[Path, Path] | None
    width: int
    height: int
    attributes: Mapping[str, str]
    bag: str


@dataclass(frozen=True)
class SuiteDataset:
    name: str
    ground_truth: CocoGroundTruth
    box_attributes: tuple[Mapping[str, str], ...]  # per annotation, file order
    bag_attribute: str | None


@dataclass(frozen=True)
class Suite:
    root: Path
    name: str
    label_version: int
    sha256: str
    created: str
    datasets: tuple[SuiteDataset, ...]
    images: tuple[SuiteImage, ...]
    policy: Policy
    files: Mapping[str, str]  # suite-relative path -> SHA-256
    document: Mapping[str, Any]  # suite.json as read

    @property
    def classes(self) -> tuple[str, ...]:
        """Category names of every data set, first seen first."""
        names = (c.name for d in self.datasets for c in d.ground_truth.categories)
        return tuple(dict.fromkeys(names))

    def bag_truths(self, class_names: Sequence[str]) -> list[BagTruth]:
        """The suite's bags for a model with these classes (a suite category the model
        lacks is refused: its threats could never be detected)."""
        index = {name: i for i, name in enumerate(class_names)}
        missing = [c for c in self.classes if c not in index]
        if missing:
            raise BadInputError(
                f"suite {self.name}: category {missing[0]!r} is not a class of the model "
                f"(model classes: {', '.join(class_names)})"
            )
        by_image: dict[tuple[str, int], list[tuple[int, Mapping[str, str]]]] = {}
        for d in self.datasets:
            gt = d.ground_truth
            names = {c.id: c.name for c in gt.categories}
            for k in range(len(gt)):
                if gt.iscrowd[k]:
                    continue  # crowd regions say "threats here, not counted one by one"
                cls = index[names[int(gt.category_ids[k])]]
                image_key = (d.name, int(gt.image_ids[k]))
                by_image.setdefault(image_key, []).append((cls, d.box_attributes[k]))
        grouped: dict[str, list[SuiteImage]] = {}
        for image in self.images:
            grouped.setdefault(image.bag, []).append(image)
        bags = []
        for key, images in grouped.items():
            boxes = [b for im in images for b in by_image.get((im.dataset, im.image_id), [])]
            bags.append(
                BagTruth(key, tuple(im.ref for im in images), images[0].attributes, tuple(boxes))
            )
        return bags


def _box_attributes(raw: Mapping[str, Any], box: Sequence[float]) -> dict[str, str]:
    attrs = text_attributes(raw.get("attributes") or {})
    attrs.setdefault(SIZE_DIM, size_bucket(float(box[2]), float(box[3])))
    return attrs


def _load_dataset(
    root: Path, entry: Any, index: int, files: Mapping[str, str]
) -> tuple[SuiteDataset, list[SuiteImage]]:
    where = f"{root / SUITE_FILE}: datasets[{index}]"
    if not isinstance(entry, dict):
        raise SuiteError(f"{where}: expected an object, got {entry!r:.60}")
    name = entry.get("name")
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise SuiteError(f"{where}: 'name': expected a folder name, got {name!r}")
    bag_attribute = entry.get("bag_attribute")
    if bag_attribute is not None and not isinstance(bag_attribute, str):
        raise SuiteError(f"{where}: 'bag_attribute': expected a string or null")
    ann_rel = f"{name}/{ANNOTATIONS_FILE}"
    ann_path = root / ann_rel
    _check_listed(ann_path, ann_rel, files, hash_now=True)
    doc = read_json(ann_path)
    gt = parse_ground_truth(doc, str(ann_path))
    raw_anns = doc["annotations"]
    box_attrs = tuple(_box_attributes(a, gt.boxes[k]) for k, a in enumerate(raw_anns))
    images = []
    for i, record in enumerate(doc["images"]):
        at = f"{ann_path}: images[{i}] (id {record['id']})"
        file_rel = relative_path(record.get("file_name"), f"{at}: 'file_name'")
        ref = f"{name}/{file_rel}"
        file_path = root / ref
        _check_listed(file_path, ref, files, hash_now=False, where=at)
        channels = None
        pair = record.get("dual_energy")
        if pair is not None:
            if not isinstance(pair, dict) or set(pair) != {"high", "low"}:
                raise SuiteError(f"{at}: 'dual_energy': expected {{'high': path, 'low': path}}")
            paths = []
            for channel in ("high", "low"):
                rel = relative_path(pair[channel], f"{at}: 'dual_energy.{channel}'")
                _check_listed(root / name / rel, f"{name}/{rel}", files, hash_now=False, where=at)
                paths.append(root / name / rel)
            channels = (paths[0], paths[1])
            stem = paths[0].with_name(paths[0].name.removesuffix("_high.png"))
            if dual_energy_paths(stem) != channels:
                raise SuiteError(
                    f"{at}: 'dual_energy': expected a pair named <stem>_high.png and "
                    f"<stem>_low.png, got {pair['high']!r} and {pair['low']!r}"
                )
        attrs = text_attributes(record.get("attributes") or {})
        bag_value = attrs.get(bag_attribute) if bag_attribute else None
        bag = f"{name}:bag:{bag_value}" if bag_value else f"{name}:{record['id']}"
        images.append(
            SuiteImage(
                ref,
                name,
                int(record["id"]),
                file_path,
                channels,
                int(record["width"]),
                int(record["height"]),
                attrs,
                bag,
            )  # fmt: skip
        )
    return SuiteDataset(name, gt, box_attrs, bag_attribute), images


def _check_listed(
    path: Path, rel: str, files: Mapping[str, str], *, hash_now: bool, where: str = ""
) -> None:
    prefix = f"{where}: " if where else ""
    if not path.is_file():
        raise SuiteError(f"{prefix}{path}: file missing")
    expected = files.get(rel)
    if expected is None:
        raise SuiteError(
            f"{prefix}{rel} is not listed in {SUITE_FILE} 'files'; make suites with "
            "`edge simulate suite` or `edge suite import`"
        )
    if hash_now and sha256_file(path) != expected:
        raise SuiteError(
            f"{path}: changed since the suite was made (SHA-256 differs from {SUITE_FILE}); "
            "labels change only through `edge suite import`, which makes a new label version"
        )


def _field(doc: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SuiteError(f"{where}: '{key}': expected {kind.__name__}, got {value!r:.60}")
    return value


def load_suite(root: Path | str) -> Suite:
    """Read and validate a suite folder. Raises SuiteError or CocoDataError (exit 2)."""
    root = Path(root)
    manifest = root / SUITE_FILE
    if not manifest.is_file():
        raise SuiteError(
            f"{root}: not a suite (no {SUITE_FILE}); make one with `edge simulate suite` or "
            "`edge suite import`"
        )
    doc = read_json(manifest)
    where = str(manifest)
    if not isinstance(doc, dict) or doc.get("format") != SUITE_FORMAT:
        raise SuiteError(f"{where}: 'format': expected {SUITE_FORMAT!r}")
    name = _field(doc, "name", str, where)
    label_version = _field(doc, "label_version", int, where)
    if label_version < 1:
        raise SuiteError(f"{where}: 'label_version': expected >= 1, got {label_version}")
    files = _field(doc, "files", dict, where)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise SuiteError(f"{where}: 'files': expected path -> SHA-256 hex strings")
    _check_listed(root / POLICY_FILE, POLICY_FILE, files, hash_now=True)
    policy = parse_policy((root / POLICY_FILE).read_text(encoding="utf-8"), str(root / POLICY_FILE))
    entries = _field(doc, "datasets", list, where)
    if not entries:
        raise SuiteError(f"{where}: 'datasets': a suite needs at least one data set")
    datasets: list[SuiteDataset] = []
    images: list[SuiteImage] = []
    for i, entry in enumerate(entries):
        dataset, dataset_images = _load_dataset(root, entry, i, files)
        if any(d.name == dataset.name for d in datasets):
            raise SuiteError(f"{where}: datasets[{i}]: duplicate data set {dataset.name!r}")
        datasets.append(dataset)
        images.extend(dataset_images)
    refs = [im.ref for im in images]
    if len(set(refs)) != len(refs):
        dup = next(r for r in refs if refs.count(r) > 1)
        raise SuiteError(f"{where}: image file {dup} is named by two image records")
    if not images:
        raise SuiteError(f"{where}: the suite holds no images")
    suite = Suite(
        root, name, label_version, hashlib.sha256(canonical_json(doc)).hexdigest(),
        str(doc.get("created", "")), tuple(datasets), tuple(images), policy, dict(files), doc,
    )  # fmt: skip
    policy.check_classes(suite.classes, str(root / POLICY_FILE))
    _check_dimensions(suite)
    return suite


def _check_dimensions(suite: Suite) -> None:
    """Refuse slice specs naming an attribute no image or box has (a typo is not a slice)."""
    known = {CLASS_DIM, SIZE_DIM}
    known.update(k for image in suite.images for k in image.attributes)
    known.update(k for d in suite.datasets for attrs in d.box_attributes for k in attrs)
    slices = suite.policy.slices
    for key, specs in (("report", slices.report), ("gate", slices.gate)):
        for text in specs:
            for dim in SliceSpec.parse(text).dims:
                if dim not in known:
                    raise SuiteError(
                        f"{suite.root / POLICY_FILE}: slices.{key}: {dim!r} in {text!r} is not an "
                        f"attribute of any image or box of the suite (known: "
                        f"{', '.join(sorted(known))})"
                    )
