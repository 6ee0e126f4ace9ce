"""The app in process (TestClient): health, frames held in memory, images, the page."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from edge.api.app import PAGES, STATIC_DIR, AppContext, create_app
from edge.auth import UserStore
from edge.frames import Frame
from edge.pipeline import Pipeline
from edge.sim.scene import simulate_bag

from .accounts import TestClient


def submit_three(service: Pipeline) -> None:
    bag = simulate_bag(3)
    service.submit(Frame(high=bag.high, low=bag.low), source="demo", bag="bag-a")
    service.submit(Frame(rgb=np.full((40, 60, 3), 90, np.uint8)), source="upload", bag="bag-b")
    service.submit(Frame(rgb=np.zeros((48, 32, 3), np.uint8)), source="upload", bag="bag-c")


def test_health_before_any_frame(client: TestClient) -> None:
    health = client.get("/api/health").json()
    assert health == {
        "status": "ok",
        "version": "9.9.9",
        "model": "tiny@0.1.0",
        "model_sha256": health["model_sha256"],
        "classes": ["gun", "knife", "blade", "scissors"],
        "frames_in": 0,
        "screened": 0,
        "not_screened": 0,
        "alarms": 0,
        "last_latency_ms": None,
        "uptime_s": health["uptime_s"],
        "queue_depth": 0,
        "latency_ms": {
            stage: {"p50": None, "p99": None} for stage in ("store", "queue", "detect", "total")
        },
        "logging": None,
        "sources": [],
        "degraded": [],
    }
    assert re.fullmatch(r"[0-9a-f]{64}", health["model_sha256"])
    assert health["uptime_s"] >= 0


def test_health_counts_frames(client: TestClient, service: Pipeline) -> None:
    submit_three(service)
    health = client.get("/api/health").json()
    assert (health["frames_in"], health["screened"], health["alarms"]) == (3, 3, 3)
    assert health["last_latency_ms"] > 0


def test_health_without_a_model_is_degraded(users: UserStore) -> None:
    service = Pipeline(None)
    service.submit(Frame(rgb=np.zeros((8, 8, 3), np.uint8)), source="test", bag="b")
    with TestClient(create_app(AppContext(service=service, users=users))) as client:
        health = client.get("/api/health").json()
    assert health["status"] == "degraded"
    assert health["model"] is None and health["model_sha256"] is None
    assert health["not_screened"] == 1
    assert health["degraded"] == [
        "no model loaded",
        "last frame f-000001 NOT SCREENED: no model loaded",
    ]


def test_frames_newest_first(operator: TestClient, service: Pipeline) -> None:
    client = operator
    submit_three(service)
    page = client.get("/api/frames").json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 50, 0)
    frames = page["items"]
    assert [f["id"] for f in frames] == ["f-000003", "f-000002", "f-000001"]
    assert [f["bag"] for f in frames] == ["bag-c", "bag-b", "bag-a"]
    newest = frames[0]
    assert set(newest) == {
        "id", "time", "bag", "source", "state", "alarm", "reason", "model",
        "detections", "width", "height", "timings_ms", "logged", "decision", "calibration",
    }  # fmt: skip
    assert (newest["width"], newest["height"], newest["source"]) == (32, 48, "upload")
    assert (newest["state"], newest["alarm"], newest["reason"]) == ("SCREENED", True, None)
    assert newest["model"] == "tiny@0.1.0"
    [detection] = newest["detections"]
    assert detection["class"] == "knife" and detection["score"] == pytest.approx(0.9)
    assert len(detection["box"]) == 4
    second = client.get("/api/frames", params={"limit": 2, "offset": 1}).json()
    assert [f["id"] for f in second["items"]] == ["f-000002", "f-000001"]
    assert second["total"] == 3
    upload = client.get("/api/frames", params={"source": "upload", "limit": 1}).json()
    assert ([f["id"] for f in upload["items"]], upload["total"]) == (["f-000003"], 2)
    recent = client.get("/api/frames/recent", params={"limit": 2}).json()
    assert [f["id"] for f in recent["items"]] == ["f-000003", "f-000002"]
    assert recent["total"] == 3


def test_memory_filters_without_an_image_log(operator: TestClient, service: Pipeline) -> None:
    submit_three(service)
    knives = operator.get("/api/frames", params={"class": "knife", "alarm": "true"}).json()
    assert knives["total"] == 3
    assert operator.get("/api/frames", params={"not_screened": "true"}).json()["total"] == 0
    assert operator.get("/api/frames", params={"class": "gun"}).json()["total"] == 0
    later = operator.get("/api/frames", params={"since": "2999-01-01T00:00:00Z"}).json()
    assert later["total"] == 0
    # Decisions and lanes live in the image log only: asking without one is an error.
    response = operator.get("/api/frames", params={"decision": "clear"})
    assert response.status_code == 400
    assert "image log" in response.json()["error"]["message"]


def test_frame_by_id_and_latest(operator: TestClient, service: Pipeline) -> None:
    client = operator
    submit_three(service)
    first = client.get("/api/frames/f-000001").json()
    assert (first["bag"], first["source"], first["width"]) == ("bag-a", "demo", 1000)
    assert client.get("/api/frames/latest").json()["id"] == "f-000003"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/frames/f-999999", 404, "unknown_frame"),
        ("/api/frames/f-999999/image", 404, "unknown_frame"),
        ("/api/frames/latest", 404, "unknown_frame"),
        ("/api/frames?limit=0", 422, "bad_request"),
        ("/api/frames?since=yesterday", 400, "bad_input"),
        ("/api/frames/f-000001/image?view=xray", 422, "bad_request"),
        ("/api/nothing-here", 404, "not_found"),
        ("/api/tests/run-1", 404, "unknown_test_run"),
    ],
)
def test_errors_have_one_json_shape(
    operator: TestClient, path: str, status: int, code: str
) -> None:
    response = operator.get(path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def test_image_is_the_frames_rendering_as_png(operator: TestClient, service: Pipeline) -> None:
    client = operator
    submit_three(service)
    for frame in service.recent():
        response = client.get(f"/api/frames/{frame.id}/image")
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        assert "max-age" in response.headers["cache-control"]
        bgr = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
        assert bgr.shape == (*frame.shape, 3)
        np.testing.assert_array_equal(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), frame.rgb)
        boxed = client.get(f"/api/frames/{frame.id}/image", params={"boxes": "1"})
        assert boxed.status_code == 200 and boxed.content != response.content
    # Without an image log only the pseudo-colour rendering is held.
    response = client.get(f"/api/frames/{service.recent()[0].id}/image", params={"view": "high"})
    assert (response.status_code, response.json()["error"]["code"]) == (409, "view_unavailable")


def test_openapi_lists_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/api/health",
        "/api/frames",
        "/api/frames/latest",
        "/api/frames/{frame_id}",
        "/api/frames/{frame_id}/image",
        "/api/frames/{frame_id}/decision",
        "/api/events",
        "/api/login",
        "/api/logout",
        "/api/me",
        "/api/models",
        "/api/models/upgrade",
        "/api/models/rollback",
        "/api/tests",
        "/api/exports",
        "/metrics",
    } <= set(paths)
    assert client.get("/docs").status_code == 200


PAGE_IDS = ["model", "health", "connection", "banner", "state", "view", "bag", "boxes", "thumbs"]


def page_scripts(client: TestClient, html: str) -> str:
    """The text of a page's module script and every module it imports, transitively."""
    pending = re.findall(r'<script type="module" src="/static/([\w.-]+\.js)"></script>', html)
    assert pending, "the page loads no module script"
    seen: dict[str, str] = {}
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        response = client.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert "javascript" in response.headers["content-type"], name  # modules need it
        seen[name] = response.text
        pending += re.findall(r'from "\./([\w.-]+\.js)"', response.text)
    return "\n".join(seen.values())


def test_console_has_the_operator_elements(operator: TestClient) -> None:
    client = operator
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for element_id in PAGE_IDS:
        assert f'id="{element_id}"' in page
    assert "NOT SCREENED" in page
    script = page_scripts(client, page)
    for needle in (
        "/api/frames/recent?limit=",
        "/api/events",
        "/api/health",
        "/image",
        "/decision",
        "X-CSRF-Token",
    ):
        assert needle in script


@pytest.mark.parametrize("path", PAGES.values())
def test_every_element_a_page_script_looks_up_is_on_the_page(
    operator: TestClient, path: str
) -> None:
    page = operator.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for element_id in re.findall(r'el\("([\w-]+)"\)', page_scripts(operator, page.text)):
        assert f'id="{element_id}"' in page.text, (path, element_id)


@pytest.mark.parametrize("path", [p for p in PAGES.values() if p != "/"])
def test_pages_send_a_stranger_to_the_login_page_and_back(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, f"/login?next={path}")


def test_pages_have_no_inline_script_or_style() -> None:
    # The CSP allows scripts and styles from files only: inline ones would not run.
    for file in sorted(STATIC_DIR.glob("*.html")):
        html = file.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), file.name
        assert "<style" not in html and " style=" not in html, file.name
        assert not re.search(r"\son[a-z]+=", html), file.name  # no onclick= handlers


def test_page_sends_a_stranger_to_the_login_page(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    page = client.get("/login")
    assert page.status_code == 200
    for element_id in re.findall(
        r'getElementById\("([\w-]+)"\)', client.get("/static/login.js").text
    ):
        assert f'id="{element_id}"' in page.text, element_id
    assert "/api/login" in client.get("/static/login.js").text


def test_page_references_nothing_outside_the_appliance() -> None:
    files = sorted(STATIC_DIR.iterdir())
    assert {f.name for f in files} >= {
        "index.html",
        "app.js",
        "style.css",
        "history.html",
        "frame.html",
        "service.html",
        "login.html",
        "login.js",
    }
    for file in files:
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"'<>)]*", file.read_text()))
        # The SVG namespace name is an identifier that is never fetched.
        assert urls <= {"http://www.w3.org/2000/svg"}, (file.name, urls)
