"""The HTML report: self-contained, its embedded document hash-checked, written beside
its JSON; the evidence it plots (confusion, worst failures) from matched boxes."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.errors import BadInputError
from edge.frames import Detections
from edge.validation.evidence import TruthBox, match_image
from edge.validation.report import verify_report
from edge.validation.report_files import write_report_files
from edge.validation.report_html import embedded_document, render_html

from .model_variants import DEMO
from .small_reports import NOISE_POLICY, noise_report
from .suite_files import make_suite

TAG = re.compile(r"<[A-Za-z][^>]*>")
URL_ATTRIBUTE = re.compile(r"""\b(?:src|href|xlink:href|action|srcset)\s*=\s*["']?([^"' >]*)""")


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return noise_report(tmp_path_factory.mktemp("report"))


def assert_self_contained(html: str) -> None:
    """Nothing the page could fetch: no URL, no protocol-relative path, no stylesheet link."""
    assert "http://" not in html and "https://" not in html
    for tag in TAG.findall(html):
        for value in URL_ATTRIBUTE.findall(tag):
            assert value.startswith(("data:", "#")), tag
    assert 'rel="stylesheet"' not in html and "@import" not in html and "url(" not in html
    assert re.search(r"<script(?![^>]*type=\"application/json\")", html) is None
    assert " style=" not in html  # inline style attributes: blocked under the app's CSP


@pytest.mark.slow
def test_the_html_report_is_self_contained_and_carries_its_document(doc: dict[str, Any]) -> None:
    html = render_html(doc)
    assert_self_contained(html)
    assert embedded_document(html) == doc and verify_report(embedded_document(html))
    assert f'<code id="report-sha256">{doc["sha256"]}</code>' in html
    assert doc["model"]["sha256"] in html and doc["suite"]["sha256"] in html
    assert doc["software"]["version"] in html and doc["created"] in html
    assert doc["device"]["hostname"] in html
    plots = set(re.findall(r'data-plot="([^"]+)"', html))
    assert {"pd-gun", "pfa", "confusion", "latency", "failure-1"} <= plots
    gallery = doc["evidence"]["worst_failures"]
    assert gallery and gallery[0]["thumbnail"].startswith("data:image/jpeg;base64,")
    assert "missed gun" in gallery[0]["reasons"][0]


@pytest.mark.slow
def test_a_changed_figure_no_longer_verifies(doc: dict[str, Any]) -> None:
    changed = copy.deepcopy(doc)
    changed["metrics"]["summary"]["pfa"] = 0.0
    html = render_html(changed)
    assert not verify_report(embedded_document(html))
    assert verify_report(embedded_document(render_html(doc)))


@pytest.mark.slow
def test_text_cannot_break_out_of_the_page(doc: dict[str, Any]) -> None:
    hostile = copy.deepcopy(doc)
    hostile["suite"]["name"] = "</script><img src=x onerror=alert(1)>"
    html = render_html(hostile)
    assert_self_contained(html)
    assert "<img" not in html and html.count("</script>") == 1
    assert embedded_document(html)["suite"]["name"] == hostile["suite"]["name"]


@pytest.mark.slow
def test_report_files_by_suffix(doc: dict[str, Any], tmp_path: Path) -> None:
    written = write_report_files(tmp_path / "r.html", doc)
    assert written == [tmp_path / "r.html", tmp_path / "r.json"]
    assert json.loads((tmp_path / "r.json").read_text()) == doc
    assert embedded_document((tmp_path / "r.html").read_text()) == doc
    assert write_report_files(tmp_path / "only.json", doc) == [tmp_path / "only.json"]
    assert not (tmp_path / "only.html").exists()
    with pytest.raises(BadInputError, match="does not exist"):
        write_report_files(tmp_path / "nowhere" / "r.html", doc)


def test_a_document_that_is_not_a_report_is_refused() -> None:
    with pytest.raises(BadInputError, match="expected an edge test or acceptance report"):
        render_html({"format": "something-else"})
    with pytest.raises(BadInputError, match="no embedded document"):
        embedded_document("<html></html>")


def _det(rows: list[tuple[int, float, tuple[float, ...]]]) -> Detections:
    return Detections(
        np.array([r[2] for r in rows], np.float32).reshape(-1, 4),
        np.array([r[1] for r in rows], np.float32),
        np.array([r[0] for r in rows], np.int64),
    )


GUN = TruthBox(0, (10, 10, 30, 30))
KNIFE = TruthBox(1, (50, 50, 70, 70))


@pytest.mark.parametrize(
    ("detections", "truth", "det_to_gt", "gt_to_det"),
    [
        ([(0, 0.9, (10, 10, 30, 30))], [GUN], (0,), (0,)),  # found
        ([(1, 0.9, (11, 11, 30, 30))], [GUN], (0,), (0,)),  # confused: gun as knife
        ([(0, 0.9, (40, 40, 45, 45))], [GUN], (-1,), (-1,)),  # false alarm, gun missed
        ([], [GUN, KNIFE], (), (-1, -1)),  # both missed
        # the same-class detection wins the box even with the lower score
        ([(1, 0.9, (10, 10, 30, 30)), (0, 0.5, (10, 10, 30, 31))], [GUN], (-1, 0), (1,)),
        ([(0, 0.8, (10, 10, 30, 30)), (1, 0.7, (50, 50, 70, 70))], [GUN, KNIFE], (0, 1), (0, 1)),
    ],
)
def test_boxes_match_own_class_first_then_across(
    detections: list[tuple[int, float, tuple[float, ...]]],
    truth: list[TruthBox],
    det_to_gt: tuple[int, ...],
    gt_to_det: tuple[int, ...],
) -> None:
    m = match_image(_det(detections), truth)
    assert (m.det_to_gt, m.gt_to_det) == (det_to_gt, gt_to_det)


@pytest.mark.slow
def test_edge_test_report_html_writes_both_files(tmp_path: Path) -> None:
    suite = make_suite(tmp_path / "suite", policy=NOISE_POLICY)
    html = tmp_path / "report.html"
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", "test", "--model", str(DEMO), "--suite", str(suite),
         "--report", str(html), "--no-record"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # Pd gun on noise frames is below its bar
    doc = json.loads((tmp_path / "report.json").read_text())
    assert verify_report(doc) and embedded_document(html.read_text()) == doc
    assert f"report: {html}" in proc.stdout
