from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from edge.api.app import STATIC_DIR, AppContext, create_app
from edge.detector import Detector
from edge.frames import Frame
from edge.pipeline import LocalScreener, Pipeline
from edge.sim.scene import simulate_bag

with warnings.catch_warnings():
    # Starlette >= 1.x prefers httpx2 for its test client and warns when it falls back to
    # httpx; either drives the app the same way.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

MakeDir = Callable[..., Path]
# One box of class 1 ("knife"), score 0.9, centred in the 64 x 64 input: every frame alarms.
ALARM_OUTPUT = np.array([[[32.0], [32.0], [20.0], [20.0], [0], [0.9], [0], [0]]], np.float32)


@pytest.fixture
def service(tiny_model_dir: MakeDir) -> Pipeline:
    return Pipeline(LocalScreener(Detector.load(tiny_model_dir([ALARM_OUTPUT]))))


@pytest.fixture
def client(service: Pipeline) -> Iterator[TestClient]:
    with TestClient(create_app(AppContext(service=service, version="9.9.9"))) as client:
        yield client


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


def test_health_without_a_model_is_degraded() -> None:
    service = Pipeline(None)
    service.submit(Frame(rgb=np.zeros((8, 8, 3), np.uint8)), source="test", bag="b")
    with TestClient(create_app(AppContext(service=service))) as client:
        health = client.get("/api/health").json()
    assert health["status"] == "degraded"
    assert health["model"] is None and health["model_sha256"] is None
    assert health["not_screened"] == 1
    assert health["degraded"] == [
        "no model loaded",
        "last frame f-000001 NOT SCREENED: no model loaded",
    ]


def test_frames_newest_first(client: TestClient, service: Pipeline) -> None:
    submit_three(service)
    frames = client.get("/api/frames").json()
    assert [f["id"] for f in frames] == ["f-000003", "f-000002", "f-000001"]
    assert [f["bag"] for f in frames] == ["bag-c", "bag-b", "bag-a"]
    newest = frames[0]
    assert set(newest) == {
        "id", "time", "bag", "source", "state", "alarm", "reason", "model",
        "detections", "width", "height", "timings_ms", "logged",
    }  # fmt: skip
    assert (newest["width"], newest["height"], newest["source"]) == (32, 48, "upload")
    assert (newest["state"], newest["alarm"], newest["reason"]) == ("SCREENED", True, None)
    assert newest["model"] == "tiny@0.1.0"
    [detection] = newest["detections"]
    assert detection["class"] == "knife" and detection["score"] == pytest.approx(0.9)
    assert len(detection["box"]) == 4
    assert [f["id"] for f in client.get("/api/frames", params={"limit": 2}).json()] == [
        "f-000003",
        "f-000002",
    ]


def test_frame_by_id_and_latest(client: TestClient, service: Pipeline) -> None:
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
        ("/api/nothing-here", 404, "not_found"),
    ],
)
def test_errors_have_one_json_shape(client: TestClient, path: str, status: int, code: str) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def test_image_is_the_frames_rendering_as_png(client: TestClient, service: Pipeline) -> None:
    submit_three(service)
    for frame in service.recent():
        response = client.get(f"/api/frames/{frame.id}/image")
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        assert "max-age" in response.headers["cache-control"]
        bgr = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
        assert bgr.shape == (*frame.shape, 3)
        np.testing.assert_array_equal(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), frame.rgb)


def test_openapi_lists_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/api/health",
        "/api/frames",
        "/api/frames/latest",
        "/api/frames/{frame_id}",
        "/api/frames/{frame_id}/image",
    } <= set(paths)
    assert client.get("/docs").status_code == 200


PAGE_IDS = ["model", "health", "connection", "banner", "state", "view", "bag", "boxes", "thumbs"]


def test_page_has_the_operator_elements(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for element_id in PAGE_IDS:
        assert f'id="{element_id}"' in page
    assert "NOT SCREENED" in page
    # Every element the script looks up is on the page.
    script = client.get("/static/app.js").text
    for element_id in re.findall(r'el\("([\w-]+)"\)', script):
        assert f'id="{element_id}"' in page, element_id
    for needle in ("/api/frames?limit=", "/api/health", "/image"):
        assert needle in script
    assert client.get("/static/style.css").status_code == 200


def test_page_references_nothing_outside_the_appliance() -> None:
    files = sorted(STATIC_DIR.iterdir())
    assert {f.name for f in files} >= {"index.html", "app.js", "style.css"}
    for file in files:
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"'<>)]*", file.read_text()))
        # The SVG namespace name is an identifier that is never fetched.
        assert urls <= {"http://www.w3.org/2000/svg"}, (file.name, urls)
