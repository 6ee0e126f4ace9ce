"""The HTML test report in the real Chromium: opened from disk (as a vendor opens the
file) and served by `edge serve` under its CSP; no console errors, every plot drawn."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page
from validation.model_variants import DEMO
from validation.suite_files import make_sim_suite

from edge.store.test_runs import record_test_run, run_row
from edge.validation.regression import run_regression
from edge.validation.report import HASH_FIELD, build_report, report_sha256
from edge.validation.report_files import write_report_files

from .conftest import log_in, screenshot
from .served import EdgeService, start_service

pytestmark = pytest.mark.slow

# The simulated suite's plots: 5 PR curves, Pd of 5 classes, Pfa, confusion, latency.
CHARTS = 13


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], Path]:
    root = tmp_path_factory.mktemp("report")
    doc = build_report(run_regression(DEMO, make_sim_suite(root / "suite")))
    doc["run_id"] = "t-20261127-120000-abcdef"
    doc[HASH_FIELD] = report_sha256(doc)
    path = root / "report.html"
    write_report_files(path, doc)
    return doc, path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EdgeService, Path]]:
    data = tmp_path_factory.mktemp("served") / "data"
    service = start_service(data)
    yield service, data
    service.stop()


def console_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def assert_plots_drawn(page: Page, gallery: int) -> None:
    plots = page.locator("svg.plot")
    assert plots.count() == CHARTS + gallery
    for k in range(plots.count()):
        box = plots.nth(k).bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0, k
    marks = page.locator("svg.plot circle, svg.plot rect.bin, svg.plot rect.cell, svg.plot image")
    assert marks.count() > CHARTS
    assert page.locator("#report-sha256").inner_text() != ""


def test_the_report_file_opens_with_every_plot_drawn(
    page: Page, report: tuple[dict[str, object], Path]
) -> None:
    doc, path = report
    errors = console_errors(page)
    page.goto(path.as_uri())
    gallery = len(doc["evidence"]["worst_failures"])  # type: ignore[index]
    assert gallery > 0
    assert_plots_drawn(page, gallery)
    assert page.locator("#report-sha256").inner_text() == doc["sha256"]
    image = page.locator('svg[data-plot="failure-1"] image')
    assert image.evaluate("el => el.getBBox().width") > 0
    assert errors == []
    page.evaluate("document.getElementById('pr').scrollIntoView()")  # the plots, not the header
    screenshot(page, "report")


def test_the_served_report_renders_under_the_csp(
    page: Page, report: tuple[dict[str, object], Path], served: tuple[EdgeService, Path]
) -> None:
    doc, _ = report
    service, data = served
    record_test_run(data, run_row(doc))  # the service holds the store: its own connection
    errors = console_errors(page)
    log_in(page, service, "tom")
    response = page.goto(f"{service.url}/api/tests/{doc['run_id']}/report?format=html")
    assert response is not None and response.status == 200
    assert "style-src 'self';" in (response.headers.get("content-security-policy") or "")
    assert_plots_drawn(page, len(doc["evidence"]["worst_failures"]))  # type: ignore[index]
    # The linked stylesheet applied: the verdict banner has its border.
    border = page.locator("#verdict").evaluate("el => getComputedStyle(el).borderTopWidth")
    assert border == "2px"
    assert errors == []
