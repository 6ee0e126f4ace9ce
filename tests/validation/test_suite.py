"""Suites: loading validates everything with a clear error; import makes label versions."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge.errors import BadInputError
from edge.validation.suite import SUITE_FILE, load_suite
from edge.validation.suite_build import import_dataset

from .suite_files import SMALL_POLICY, make_suite, rehash, write_dataset, write_json


def edit_annotations(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / "set" / "annotations.json"
        doc = json.loads(path.read_text())
        change(doc)
        write_json(path, doc)
        rehash(root)

    return apply


def edit_manifest(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        doc = json.loads((root / SUITE_FILE).read_text())
        change(doc)
        write_json(root / SUITE_FILE, doc)

    return apply


def set_policy(text: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / "policy.toml").write_text(text)
        rehash(root)

    return apply


def tamper(root: Path) -> None:
    path = root / "set" / "annotations.json"
    path.write_text(path.read_text().replace('"occluded": "none"', '"occluded": "heavy"'))


BREAKAGES: list[tuple[str, Callable[[Path], None], str]] = [
    ("no manifest", lambda r: (r / SUITE_FILE).unlink(), "not a suite (no suite.json)"),
    ("missing image", lambda r: (r / "set/images/0002.png").unlink(), "set/images/0002.png: file missing"),
    ("missing channel", lambda r: (r / "set/images/0003_low.png").unlink(), "0003_low.png: file missing"),
    ("box outside", edit_annotations(lambda d: d["annotations"][0].update(bbox=[50, 10, 30, 12])),
     "annotations[0] (id 1): 'bbox' [50.0, 10.0, 30.0, 12.0] lies outside image 1 (64x48"),
    ("unknown category", edit_annotations(lambda d: d["annotations"][1].update(category_id=9)),
     "annotations[1] (id 2): 'category_id' 9 is not in 'categories'"),
    ("duplicate image id", edit_annotations(lambda d: d["images"][1].update(id=1)),
     "images[1] (id 1): duplicate image id 1"),
    ("duplicate annotation id", edit_annotations(lambda d: d["annotations"][1].update(id=1)),
     "annotations[1] (id 1): duplicate annotation id 1"),
    ("escaping path", edit_annotations(lambda d: d["images"][0].update(file_name="../x.png")),
     "'../x.png' must be a relative path inside the suite"),
    ("misnamed pair", edit_annotations(
        lambda d: d["images"][0]["dual_energy"].update(low="images/0002_low.png")),
     "expected a pair named <stem>_high.png and <stem>_low.png"),
    ("unlisted file", edit_manifest(lambda d: d["files"].pop("set/images/0004_high.png")),
     "set/images/0004_high.png is not listed in suite.json 'files'"),
    ("labels changed", tamper, "changed since the suite was made"),
    ("bad policy", set_policy("[absolute]\npfa_max = 7\n"), "absolute.pfa_max: Input should be"),
    ("policy class typo", set_policy("[absolute.pd_min]\ngnu = 0.9\n"),
     "absolute.pd_min.gnu: not a class of the suite (classes: gun, knife)"),
    ("slice typo", set_policy("[slices]\nreport = ['class x cluter']\n"),
     "slices.report: 'cluter' in 'class x cluter' is not an attribute of any image or box"),
    ("label version", edit_manifest(lambda d: d.update(label_version=0)),
     "'label_version': expected >= 1"),
    ("format", edit_manifest(lambda d: d.update(format="other/1")), "'format': expected"),
    ("no data sets", edit_manifest(lambda d: d.update(datasets=[])), "at least one data set"),
]  # fmt: skip


def test_a_valid_suite_loads(tmp_path: Path) -> None:
    suite = load_suite(make_suite(tmp_path / "s"))
    assert (suite.name, suite.label_version, len(suite.images)) == ("tiny", 1, 4)
    assert suite.classes == ("gun", "knife")
    image = suite.images[0]
    assert image.ref == "set/images/0001.png" and image.channels is not None
    assert image.attributes == {"clutter": "low", "bag": "bag-1"}
    assert suite.datasets[0].box_attributes[0] == {"occluded": "none", "size": "small"}
    bags = suite.bag_truths(["knife", "gun", "bottle"])
    assert len(bags) == 4 and bags[0].true_classes == {1}  # gun is class 1 of that model
    with pytest.raises(BadInputError, match="category 'knife' is not a class of the model"):
        suite.bag_truths(["gun"])


@pytest.mark.parametrize(("case", "breakage", "message"), BREAKAGES, ids=[b[0] for b in BREAKAGES])
def test_loading_refuses_with_a_clear_error(
    tmp_path: Path, case: str, breakage: Callable[[Path], None], message: str
) -> None:
    root = make_suite(tmp_path / "s")
    breakage(root)
    with pytest.raises(BadInputError) as info:
        load_suite(root)
    assert message in info.value.message, info.value.message


def test_import_makes_label_versions_and_keeps_the_previous_one(tmp_path: Path) -> None:
    first = tmp_path / "labelled-v1"
    write_dataset(first, images=4)
    suite_dir = tmp_path / "suites" / "site"
    one = import_dataset(first, suite_dir, dataset="site-a", policy_text=SMALL_POLICY)
    assert (one.label_version, one.replaced, one.previous, one.images) == (1, False, None, 4)
    v1 = load_suite(suite_dir)
    assert v1.sha256 == one.sha256 and v1.name == "site"
    # Labellers correct the boxes: the same data set comes back re-labelled.
    doc = json.loads((first / "annotations.json").read_text())
    doc["annotations"][0]["bbox"] = [12, 10, 20, 12]
    doc["annotations"][0]["pre_annotation"] = True
    write_json(first / "annotations.json", doc)
    two = import_dataset(first, suite_dir, dataset="site-a", note="guide v2")
    assert (two.label_version, two.replaced, two.pre_annotations) == (2, True, 1)
    assert two.previous == suite_dir.with_name("site.label-v1")
    v2 = load_suite(suite_dir)
    assert v2.sha256 != v1.sha256
    assert v2.document["history"][0]["sha256"] == v1.sha256
    assert load_suite(two.previous).sha256 == v1.sha256  # the old version still checks out
    assert (suite_dir / "policy.toml").read_text() == SMALL_POLICY  # kept
    # A second data set is added beside the first; the unchanged one's files are hard links
    # to the previous version's (never to the source folder, which labellers may edit).
    other = tmp_path / "other"
    write_dataset(other, images=2, seed=1)
    three = import_dataset(other, suite_dir)
    assert (three.label_version, three.dataset) == (3, "other")
    v3 = load_suite(suite_dir)
    assert [d.name for d in v3.datasets] == ["site-a", "other"]
    kept = suite_dir.with_name("site.label-v2") / "site-a/images/0001.png"
    assert os.stat(suite_dir / "site-a/images/0001.png").st_ino == os.stat(kept).st_ino
    assert os.stat(first / "images/0001.png").st_ino != os.stat(kept).st_ino


def test_import_of_an_export_checks_its_images_and_groups_views_by_bag(tmp_path: Path) -> None:
    export = tmp_path / "export"
    write_dataset(export, images=4)
    files = {
        rel: __import__("hashlib").sha256((export / rel).read_bytes()).hexdigest()
        for rel in ("images/0001.png", "images/0002.png")
    }
    write_json(export / "manifest.json", {"format": "edge-export/1", "files": files})
    summary = import_dataset(export, tmp_path / "s")
    suite = load_suite(tmp_path / "s")
    assert suite.document["datasets"][0]["source"]["kind"] == "edge-export"
    assert len(suite.bag_truths(["gun", "knife"])) == 2  # views 1+2 and 3+4 share bag ids
    assert summary.label_version == 1
    (export / "images/0002.png").write_bytes(b"changed")
    with pytest.raises(BadInputError, match="differs from the export's manifest.json"):
        import_dataset(export, tmp_path / "s2")
    assert not (tmp_path / "s2").exists()


def test_import_refuses_a_bad_source_and_a_foreign_folder(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_dataset(src, images=2)
    (src / "images/0002_low.png").unlink()
    with pytest.raises(BadInputError, match="0002_low.png: file missing"):
        import_dataset(src, tmp_path / "s")
    good = tmp_path / "good"
    write_dataset(good, images=2)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match="is not empty and is not a suite"):
        import_dataset(good, busy)
    assert not list(tmp_path.glob("*.partial-*"))
