"""The operator console, the history, the frame page and the technician page in the real
Chromium, against a real `edge serve`: bags arrive through the HTTP ingest path (POST
/api/frames with a bearer token) and reach the page over the live-event stream."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from .conftest import log_in, screenshot
from .served import GUN_SEED, EdgeService, dual_energy_tiff

pytestmark = pytest.mark.slow

BOX_DEADLINE_S = 1.0  # the box overlay appears within 1 s of the result


def box_of(frame_id: str, class_name: str) -> str:
    return f'#view[data-frame="{frame_id}"] #boxes .det[data-class="{class_name}"]'


def test_gun_bag_is_boxed_within_a_second_and_s_records_search(
    page: Page, screening: EdgeService
) -> None:
    log_in(page, screening, "olga")
    expect(page.locator("#user")).to_have_text("olga (operator)")
    expect(page.locator("#model")).to_have_text("demo-xray-det v1.0.0")
    expect(page.locator("#live-mode")).to_have_text("live")  # the event stream is open

    frame = screening.upload("olga", dual_energy_tiff(GUN_SEED, ["gun"]), "bag-gun-1")
    screened = time.monotonic()  # the upload answers once the bag is screened
    assert frame["alarm"] is True and "gun" in [d["class"] for d in frame["detections"]]
    page.locator(box_of(frame["id"], "gun")).wait_for(
        state="visible", timeout=BOX_DEADLINE_S * 1000
    )
    elapsed = time.monotonic() - screened
    print(f"gun box visible {elapsed * 1000:.0f} ms after the upload answered")
    assert elapsed <= BOX_DEADLINE_S
    expect(page.locator("#state")).to_have_text("ALARM")
    expect(page.locator("#state-detail")).to_contain_text("gun")
    thumb = page.locator(f'#thumbs .thumb[data-frame="{frame["id"]}"] img')
    expect(thumb).to_be_visible()
    expect(thumb).to_have_attribute("src", re.compile(r"[?&]max=256\b"))  # a thumbnail
    assert 0 < thumb.evaluate("img => img.decode().then(() => img.naturalWidth)") <= 256
    expect(page.locator("#banner")).to_be_hidden()
    screenshot(page, "console-alarm")

    page.keyboard.press("s")
    expect(page.locator("#toast")).to_contain_text("SEARCH BAG recorded for bag bag-gun-1 by olga")
    expect(page.locator("#decided")).to_have_text("decided: SEARCH BAG")
    stored = screening.get("olga", f"/api/frames/{frame['id']}")
    assert stored["decision"] == "search"
    assert [(d["decision"], d["user"]) for d in stored["decisions"]] == [("search", "olga")]

    # The view toggles ask the API for the other renderings; boxes toggle; zoom.
    page.keyboard.press("4")
    expect(page.locator("#view")).to_have_attribute("data-view", "material")
    page.keyboard.press("b")
    expect(page.locator(box_of(frame["id"], "gun"))).to_be_hidden()
    page.keyboard.press("b")
    page.keyboard.press("+")
    expect(page.locator("[data-zoom]")).to_have_text("150%")
    page.keyboard.press("0")
    expect(page.locator("[data-zoom]")).to_have_text("100%")


def test_history_filter_finds_the_bag_and_its_frame_page(
    page: Page, screening: EdgeService
) -> None:
    gun = screening.upload("olga", dual_energy_tiff(GUN_SEED + 1, ["gun"]), "bag-history-gun")
    clean = screening.upload("olga", dual_energy_tiff(GUN_SEED, []), "bag-history-clean")
    log_in(page, screening, "olga", "/history")

    page.select_option("#f-alarm", "true")
    page.select_option("#f-class", "gun")
    page.fill("#f-source", "upload")
    page.click("#search")
    expect(page.locator(f'#rows tr[data-frame="{gun["id"]}"]')).to_be_visible()
    expect(page.locator(f'#rows tr[data-frame="{clean["id"]}"]')).to_have_count(0)
    row_image = page.locator(f'#rows tr[data-frame="{gun["id"]}"] img')
    expect(row_image).to_have_attribute("src", re.compile(r"[?&]max=256\b"))
    assert "alarm=true" in page.url and "class=gun" in page.url
    screenshot(page, "history")

    page.select_option("#f-decision", "threat")  # nobody decided threat on it
    page.click("#search")
    expect(page.locator("#summary")).to_have_text("no frame matches these filters")
    page.select_option("#f-decision", "none")
    # The page's clock is UTC (the context's time zone), like the frame times; the inputs
    # hold whole seconds: from that second the bag is in, until it (exclusive) it is not.
    second = gun["time"][:19]
    page.fill("#f-since", second)
    page.click("#search")
    expect(page.locator(f'#rows tr[data-frame="{gun["id"]}"]')).to_be_visible()
    page.fill("#f-since", "")
    page.fill("#f-until", second)
    page.click("#search")
    expect(page.locator(f'#rows tr[data-frame="{gun["id"]}"]')).to_have_count(0)
    page.fill("#f-until", "")

    page.select_option("#f-decision", "")
    page.select_option("#f-alarm", "false")
    page.select_option("#f-class", "")
    page.click("#search")
    expect(page.locator(f'#rows tr[data-frame="{clean["id"]}"]')).to_be_visible()
    expect(page.locator(f'#rows tr[data-frame="{gun["id"]}"]')).to_have_count(0)

    # The frame page: image with boxes, detections, model version, timings, decisions.
    page.select_option("#f-alarm", "true")
    page.click("#search")
    page.locator(f'#rows tr[data-frame="{gun["id"]}"] a').click()
    expect(page).to_have_url(f"{screening.url}/frame?id={gun['id']}")
    expect(page.locator("#title")).to_have_text("Bag bag-history-gun")
    expect(page.locator(box_of(gun["id"], "gun"))).to_be_visible()
    expect(page.locator("#facts")).to_contain_text("demo-xray-det v1.0.0")
    expect(page.locator("#detections")).to_contain_text("gun")
    expect(page.locator("#timings")).to_contain_text("ms")
    expect(page.locator("#decisions")).to_have_text("no decision yet")
    page.keyboard.press("t")
    expect(page.locator("#decisions")).to_contain_text("THREAT CONFIRMED")
    expect(page.locator("#decisions")).to_contain_text("olga")
    screenshot(page, "frame")


def test_console_polls_when_the_live_stream_is_down(page: Page, screening: EdgeService) -> None:
    page.route("**/api/events", lambda route: route.abort())  # every stream attempt fails
    log_in(page, screening, "olga")
    expect(page.locator("#live-mode")).to_have_text("live stream down: polling every second")
    frame = screening.upload("olga", dual_energy_tiff(GUN_SEED + 2, ["gun"]), "bag-polled")
    # Polled once a second: the box is there within the poll period plus the image.
    expect(page.locator(box_of(frame["id"], "gun"))).to_be_visible(timeout=3000)
    expect(page.locator("#connection")).to_be_hidden()  # the service itself answers


def test_not_screened_bag_shows_the_banner(page: Page, failing: EdgeService) -> None:
    log_in(page, failing, "olga")
    expect(page.locator("#live-mode")).to_have_text("live")
    frame = failing.upload("olga", dual_energy_tiff(GUN_SEED, ["gun"]), "bag-unscreened")
    assert frame["state"] != "SCREENED" and frame["alarm"] is None

    banner = page.locator("#banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("NOT SCREENED")
    expect(page.locator("#banner-reason")).to_contain_text("bag-unscreened")
    expect(page.locator("#state")).to_have_text("NOT SCREENED")
    expect(page.locator("#view")).to_have_attribute("data-frame", frame["id"])
    expect(page.locator("#health")).to_contain_text("DEGRADED")
    screenshot(page, "console-not-screened")


def test_operator_cannot_reach_technician_actions(page: Page, screening: EdgeService) -> None:
    log_in(page, screening, "olga")
    expect(page.locator("#user")).to_have_text("olga (operator)")
    expect(page.get_by_role("link", name="History")).to_be_visible()
    expect(page.locator('a[href="/service"]')).to_be_hidden()

    page.goto(f"{screening.url}/service")
    expect(page.locator("#no-role")).to_contain_text("Nothing here for the operator role")
    for section in ("#models-section", "#upgrade-section", "#tests-section", "#audit-section"):
        expect(page.locator(section)).to_be_hidden()

    # The API refuses the operator's session too, with a valid CSRF token.
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "edge_csrf")
    for path in ("/api/models/upgrade", "/api/models/rollback", "/api/tests"):
        refused = page.request.post(
            f"{screening.url}{path}", headers={"X-CSRF-Token": csrf}, data={}
        )
        assert refused.status == 403, (path, refused.text())
        assert "needs the technician" in refused.json()["error"]["message"]


def test_technician_sees_models_and_a_missing_bundle_is_refused_in_plain_words(
    page: Page, screening: EdgeService
) -> None:
    log_in(page, screening, "tom", "/service")
    expect(page.locator('a[href="/service"]')).to_be_visible()
    expect(page.locator("#active")).to_contain_text("demo-xray-det v1.0.0")
    expect(page.locator("#runs")).to_have_text("no test runs yet")
    # The thresholds in force: the shipped model's own, no device calibration yet.
    expect(page.locator("#thresholds-source")).to_contain_text("model manifest")
    expect(page.locator("#thresholds")).to_contain_text("gun")
    # The audit log: the factory model's install, newest first, with the chain verified.
    expect(page.locator("#audit-entries")).to_contain_text("factory-install")
    expect(page.locator("#audit-verify")).to_contain_text("Hash chain verified")

    page.fill("#bundle", "/media/usb/demo-xray-det-1.1.0.tar")
    page.click("#upgrade")
    outcome = page.locator("#upgrade-outcome")
    expect(outcome).to_have_text("Refused: /media/usb/demo-xray-det-1.1.0.tar: no such bundle file")
    page.reload()
    expect(page.locator("#active")).to_contain_text("demo-xray-det v1.0.0")  # unchanged
    # The refusal is in the audit log, first on the page, the chain still intact.
    first = page.locator("#audit-entries tr").first
    expect(first).to_contain_text("upgrade-failed")
    expect(first).to_contain_text("user:tom")
    expect(first).to_contain_text("no such bundle file")
    expect(page.locator("#audit-verify")).to_contain_text("Hash chain verified")
    screenshot(page, "service")

    # A technician has no decision keys on the console.
    page.goto(f"{screening.url}/")
    expect(page.locator("#decide")).to_be_hidden()
