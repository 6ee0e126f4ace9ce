"""/docs on an appliance with no network: the API reference renders in the real Chromium
from /openapi.json alone, and nothing on it is fetched from another origin."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, Request, expect

from .conftest import screenshot
from .served import EdgeService

pytestmark = pytest.mark.slow


def test_api_reference_renders_offline(page: Page, screening: EdgeService) -> None:
    elsewhere: list[str] = []

    def note(request: Request) -> None:
        if not request.url.startswith((screening.url, "data:")):
            elsewhere.append(request.url)

    page.on("request", note)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{screening.url}/docs")
    expect(page.locator("body[data-ready]")).to_be_attached(timeout=10_000)
    assert int(page.locator("body").get_attribute("data-ready") or 0) >= 10
    expect(page.locator("#toc")).to_contain_text("POST /api/frames/{frame_id}/decision")
    expect(page.locator("#schemas")).to_contain_text("DecisionBody")
    screenshot(page, "api-docs")
    assert elsewhere == [], f"fetched from elsewhere: {elsewhere}"
    assert errors == [], f"console errors (a CSP refusal shows here): {errors}"
