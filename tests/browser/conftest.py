"""Browser fixtures: the system Chromium driven by Playwright (no browser download), real
`edge serve` processes, and screenshots kept under test-artifacts/browser/.

Without /usr/bin/chromium (Debian's `chromium` package) these tests fail, and say so: CI
installs it, and a browser test that silently skips is a test that cannot fail.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TINY_MANIFEST, gather_failure_model, onnx_model
from playwright.sync_api import Browser, Page, expect, sync_playwright

from .served import PASSWORD, REPO, EdgeService, start_service

ARTIFACTS = REPO / "test-artifacts" / "browser"
_saved: list[Path] = []


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "the browser tests need the system Chromium (`chromium` on PATH, Debian's "
            "/usr/bin/chromium: apt-get install chromium); Playwright's own browsers are "
            "not used"
        )
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        # --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def screening(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeService]:
    """`edge serve` with the shipped demo model: a gun bag alarms."""
    service = start_service(tmp_path_factory.mktemp("screening") / "data")
    yield service
    service.stop()


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeService]:
    """`edge serve` with a model that loads but fails on every bag: each is NOT SCREENED."""
    root = tmp_path_factory.mktemp("failing")
    model_dir = root / "model"
    model_dir.mkdir()
    data = onnx_model(gather_failure_model(3.0)).SerializeToString()  # fails even on padding
    (model_dir / "model.onnx").write_bytes(data)
    manifest = copy.deepcopy(TINY_MANIFEST)
    manifest["sha256"] = {"model.onnx": hashlib.sha256(data).hexdigest()}
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    service = start_service(root / "data", model=model_dir)
    yield service
    service.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) at the console's size."""
    context = browser.new_context(viewport={"width": 1400, "height": 950}, timezone_id="UTC")
    page = context.new_page()
    yield page
    context.close()


def log_in(page: Page, service: EdgeService, name: str, path: str = "/") -> None:
    """Through the login page, as a person would; ends on `path`."""
    page.goto(f"{service.url}{path}")
    expect(page).to_have_url(f"{service.url}/login" + ("" if path == "/" else f"?next={path}"))
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("#submit")
    expect(page).to_have_url(f"{service.url}{path}")


def screenshot(page: Page, name: str) -> Path:
    """Save the page as test-artifacts/browser/<name>.png (listed at the end of the run)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    _saved.append(path)
    print(f"screenshot: {path}")
    return path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _saved:
        terminalreporter.section("browser screenshots")
        for path in _saved:
            terminalreporter.write_line(str(path.relative_to(REPO)))
