"""`edge eval` through edge.cli.main: one JSON document equal to pycocotools, exit 2 on bad
files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge.cli import main
from edge.sim.coco_results import EvalDataSpec, generate_eval_data
from edge.validation.coco_metrics import STAT_NAMES

from .conftest import reference_eval


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, dict[str, Any], list[dict[str, Any]]]:
    doc, results = generate_eval_data(EvalDataSpec(crowd_rate=0.1, classes_without_gt=1), 5)
    (tmp_path / "gt.json").write_text(json.dumps(doc))
    (tmp_path / "dt.json").write_text(json.dumps(results))
    return tmp_path / "gt.json", tmp_path / "dt.json", doc, results


def test_json_output_equals_pycocotools(files: Any, capsys: pytest.CaptureFixture[str]) -> None:
    gt, dt, doc, results = files
    assert main(["eval", "--gt", str(gt), "--dt", str(dt), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)  # exactly one document
    ref = reference_eval(doc, results)
    assert out["stats"] == pytest.approx(list(ref.stats), abs=1e-9)
    assert out["stat_names"] == list(STAT_NAMES)
    assert out["counts"] == {
        "images": len(doc["images"]),
        "categories": len(doc["categories"]),
        "annotations": len(doc["annotations"]),
        "crowd": sum(a["iscrowd"] for a in doc["annotations"]),
        "detections": len(results),
        "detections_evaluated": len(results),
    }
    classes = out["per_class"]
    assert [c["category_id"] for c in classes] == sorted(c["id"] for c in doc["categories"])
    assert classes[-1]["ap"] == -1 and classes[-1]["gt"] == 0  # the class without ground truth
    precision = ref.eval["precision"]
    for k, c in enumerate(classes):
        s = precision[0, :, k, 0, 2]
        assert c["ap50"] == pytest.approx(s[s > -1].mean() if (s > -1).any() else -1, abs=1e-12)
        assert len(c["stats"]) == 12


def test_table_output(files: Any, capsys: pytest.CaptureFixture[str]) -> None:
    gt, dt, doc, _ = files
    assert main(["eval", "--gt", str(gt), "--dt", str(dt)]) == 0
    out = capsys.readouterr().out
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in out
    assert out.count("Average Recall") == 6
    for category in doc["categories"]:
        assert category["name"] in out


@pytest.mark.parametrize(
    ("which", "content", "fragment"),
    [
        ("gt", "{not json", "not valid JSON"),
        ("gt", '{"images": [], "categories": []}', "missing 'annotations'"),
        (
            "dt",
            '[{"image_id": -5, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]',
            "'image_id' -5",
        ),
    ],
)
def test_broken_files_exit_2_with_one_line(
    files: Any, capsys: pytest.CaptureFixture[str], which: str, content: str, fragment: str
) -> None:
    gt, dt, _, _ = files
    broken = gt if which == "gt" else dt
    broken.write_text(content)
    assert main(["eval", "--gt", str(gt), "--dt", str(dt), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"edge: {broken}: ") and fragment in lines[0]


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--gt", str(tmp_path / "no.json"), "--dt", str(tmp_path / "no.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
