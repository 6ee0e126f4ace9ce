"""Making suites: the manifest of a new suite, and a new label version from a labelled data
set (`edge suite import`).

A new label version is built whole beside the suite (`<suite>.partial-*`), validated by
loading it, and then swapped in: the previous version is kept as `<suite>.label-v<N>` so
reports made on it can still be checked against its hash. Unchanged files are hard-linked
from the previous version where the file system allows, else copied; files of the
imported folder are always copied (labellers may go on editing it).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.store.images import fsync_dir, write_fsynced
from edge.store.records import iso, utc_now
from edge.validation.coco import parse_ground_truth, read_json
from edge.validation.policy import IMPORTED_POLICY_TOML, STANDARD_POLICY_TOML, parse_policy
from edge.validation.suite import (
    ANNOTATIONS_FILE,
    POLICY_FILE,
    SUITE_FILE,
    SUITE_FORMAT,
    Suite,
    SuiteError,
    load_suite,
    relative_path,
    sha256_file,
)

EXPORT_FORMAT = "edge-export/1"  # edge/export.py's manifest


@dataclass(frozen=True)
class DatasetEntry:
    """A data set of a suite: its folder name, how frames group into bags, where it came from."""

    name: str
    bag_attribute: str | None = None
    source: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "bag_attribute": self.bag_attribute, "source": dict(self.source)}


def dataset_files(folder: Path) -> list[str]:
    """annotations.json and every image file its records name, relative to `folder`; the
    COCO document is validated on the way (SuiteError or CocoDataError)."""
    ann = folder / ANNOTATIONS_FILE
    doc = read_json(ann)
    parse_ground_truth(doc, str(ann))
    names = [ANNOTATIONS_FILE]
    for i, record in enumerate(doc["images"]):
        at = f"{ann}: images[{i}] (id {record['id']})"
        names.append(str(relative_path(record.get("file_name"), f"{at}: 'file_name'")))
        pair = record.get("dual_energy")
        if isinstance(pair, dict):
            for channel in ("high", "low"):
                if channel in pair:
                    names.append(
                        str(relative_path(pair[channel], f"{at}: 'dual_energy.{channel}'"))
                    )
    for rel in names:
        if not (folder / rel).is_file():
            raise SuiteError(f"{folder / rel}: file missing (named in {ann})")
    return list(dict.fromkeys(names))


def write_manifest(
    root: Path,
    *,
    name: str,
    label_version: int,
    datasets: Sequence[DatasetEntry],
    known_hashes: Mapping[str, str] | None = None,
    history: Sequence[Mapping[str, Any]] = (),
    note: str = "",
) -> Path:
    """Hash the suite's files (reusing `known_hashes`, suite-relative) and write suite.json."""
    known = dict(known_hashes or {})
    files = {POLICY_FILE: sha256_file(root / POLICY_FILE)}
    for entry in datasets:
        for rel in dataset_files(root / entry.name):
            path = f"{entry.name}/{rel}"
            files[path] = known.get(path) or sha256_file(root / path)
    doc = {
        "format": SUITE_FORMAT,
        "name": name,
        "label_version": label_version,
        "created": iso(utc_now()),
        "note": note,
        "datasets": [entry.as_json() for entry in datasets],
        "policy": POLICY_FILE,
        "files": dict(sorted(files.items())),
        "history": list(history),
    }
    manifest = root / SUITE_FILE
    write_fsynced(manifest, (json.dumps(doc, indent=1) + "\n").encode())
    fsync_dir(root)
    return manifest


def write_policy(root: Path, text: str | None) -> None:
    """The policy file: `text`, or the standard suite's policy."""
    text = STANDARD_POLICY_TOML if text is None else text
    parse_policy(text, str(root / POLICY_FILE))  # refuse a bad policy before writing it
    write_fsynced(root / POLICY_FILE, text.encode("utf-8"))


def _place(src: Path, dst: Path, *, link: bool) -> None:
    """Copy, or hard-link a file of an earlier suite version (immutable, unlike a source
    folder that labellers may go on editing in place)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


@contextmanager
def _partial_beside(target: Path) -> Iterator[Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{target.name}.partial-", dir=target.parent))
    try:
        partial.chmod(0o755)
        yield partial
    finally:
        shutil.rmtree(partial, ignore_errors=True)


@dataclass(frozen=True)
class ImportSummary:
    suite: Path
    name: str
    label_version: int
    sha256: str
    dataset: str
    replaced: bool  # the data set was in the previous version (re-labelled)
    images: int
    annotations: int
    pre_annotations: int  # boxes still marked as the model's unreviewed pre-annotations
    previous: Path | None  # where the previous label version was kept

    def as_json(self) -> dict[str, Any]:
        return {
            "suite": str(self.suite),
            "name": self.name,
            "label_version": self.label_version,
            "sha256": self.sha256,
            "dataset": self.dataset,
            "replaced": self.replaced,
            "images": self.images,
            "annotations": self.annotations,
            "pre_annotations": self.pre_annotations,
            "previous": None if self.previous is None else str(self.previous),
        }


def _export_provenance(src: Path, files: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """For an `edge export` folder: its identity, and its image hashes (checked here)."""
    manifest_path = src / "manifest.json"
    if not manifest_path.is_file():
        return {"kind": "coco", "path": str(src)}, {}
    manifest = read_json(manifest_path)
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
        return {"kind": "coco", "path": str(src)}, {}
    listed = manifest.get("files") or {}
    hashes: dict[str, str] = {}
    for rel in files:
        if rel == ANNOTATIONS_FILE or rel not in listed:
            continue
        actual = sha256_file(src / rel)
        if actual != listed[rel]:
            raise SuiteError(
                f"{src / rel}: differs from the export's manifest.json; labellers change "
                "annotations.json only, never the images"
            )
        hashes[rel] = actual
    provenance = {
        "kind": "edge-export",
        "path": str(src),
        "created": manifest.get("created"),
        "manifest_sha256": sha256_file(manifest_path),
        "models": manifest.get("models", {}),
    }
    return provenance, hashes


def import_dataset(
    src: Path,
    suite_dir: Path,
    *,
    dataset: str | None = None,
    policy_text: str | None = None,
    name: str | None = None,
    bag_attribute: str | None = None,
    note: str = "",
) -> ImportSummary:
    """Add (or replace, when re-labelled) the data set in `src` as a new label version of
    the suite in `suite_dir` (a new suite at label version 1 when there is none).

    `bag_attribute`: the image attribute naming each frame's bag (views of one bag count
    as one bag); None: "bag" for an `edge export`, else each image is a bag; "": each
    image is a bag."""
    src, suite_dir = Path(src).absolute(), Path(suite_dir).absolute()
    files = dataset_files(src)
    provenance, checked = _export_provenance(src, files)
    if bag_attribute is None and provenance["kind"] == "edge-export":
        bag_attribute = "bag"  # exported frames carry the scanner's bag id
    bag_attribute = bag_attribute or None  # "": each image is its own bag
    dataset = dataset or src.name
    relative_path(dataset, "--dataset")
    if "/" in dataset or dataset.startswith("."):
        raise SuiteError(f"--dataset: expected a folder name, got {dataset!r}")
    old: Suite | None = None
    if suite_dir.exists():
        if not (suite_dir / SUITE_FILE).is_file() and any(suite_dir.iterdir()):
            raise SuiteError(f"{suite_dir}: exists, is not empty and is not a suite")
        if (suite_dir / SUITE_FILE).is_file():
            old = load_suite(suite_dir)
    version = 1 if old is None else old.label_version + 1
    entries = [] if old is None else [DatasetEntry(**_entry(e)) for e in old.document["datasets"]]
    replaced = any(e.name == dataset for e in entries)
    entries = [e for e in entries if e.name != dataset]
    entries.append(DatasetEntry(dataset, bag_attribute, provenance))
    with _partial_beside(suite_dir) as partial:
        known: dict[str, str] = {}
        if old is not None:
            for entry in entries[:-1]:
                for rel in dataset_files(old.root / entry.name):
                    _place(old.root / entry.name / rel, partial / entry.name / rel, link=True)
                    known[f"{entry.name}/{rel}"] = old.files[f"{entry.name}/{rel}"]
        for rel in files:
            _place(src / rel, partial / dataset / rel, link=False)
            if rel in checked:
                known[f"{dataset}/{rel}"] = checked[rel]
        if policy_text is None:
            policy_text = IMPORTED_POLICY_TOML
            if old is not None:
                policy_text = (old.root / POLICY_FILE).read_text(encoding="utf-8")
        write_policy(partial, policy_text)
        history = [] if old is None else [*old.document.get("history", []), _history(old)]
        suite_name = name or (old.name if old is not None else suite_dir.name)
        write_manifest(
            partial, name=suite_name, label_version=version, datasets=entries,
            known_hashes=known, history=history, note=note,
        )  # fmt: skip
        new = load_suite(partial)  # the new version must load before it replaces the old
        previous = _swap_in(partial, suite_dir, old)
    doc = read_json(suite_dir / dataset / ANNOTATIONS_FILE)
    pre = sum(1 for a in doc["annotations"] if isinstance(a, dict) and a.get("pre_annotation"))
    return ImportSummary(
        suite_dir, suite_name, version, new.sha256, dataset, replaced,
        len(doc["images"]), len(doc["annotations"]), pre, previous,
    )  # fmt: skip


def _entry(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": raw["name"],
        "bag_attribute": raw.get("bag_attribute"),
        "source": raw.get("source") or {},
    }


def _history(old: Suite) -> dict[str, Any]:
    return {
        "label_version": old.label_version,
        "sha256": old.sha256,
        "created": old.created,
        "datasets": [d.name for d in old.datasets],
    }


def _swap_in(partial: Path, suite_dir: Path, old: Suite | None) -> Path | None:
    """Rename the finished version into place, keeping the previous one beside it."""
    previous = None
    if old is not None:
        previous = suite_dir.with_name(f"{suite_dir.name}.label-v{old.label_version}")
        if previous.exists():
            raise SuiteError(f"{previous} exists; move it away to keep that label version")
        os.rename(suite_dir, previous)
    elif suite_dir.exists():
        suite_dir.rmdir()  # empty: checked above
    try:
        os.rename(partial, suite_dir)
    except OSError:
        if previous is not None:
            os.rename(previous, suite_dir)  # the old version stays the suite
        raise
    fsync_dir(suite_dir.parent)
    return previous
