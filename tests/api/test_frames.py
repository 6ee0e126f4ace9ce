"""Frames with a real image log: filtered, paged history; image views; decisions; exports."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.api.app import AppContext, create_app
from edge.auth import UserStore
from edge.detector import Detector
from edge.frames import Frame, Result
from edge.pipeline import Intake, LocalScreener, Pipeline
from edge.sim.scene import simulate_bag
from edge.store import Store
from edge.upgrade import audit

from .accounts import ALARM_OUTPUT, TestClient, login

MakeDir = Callable[..., Path]
# Score 0.1 for class 1, under the 0.25 threshold: every frame is clear.
CLEAR_OUTPUT = np.array([[[32.0], [32.0], [20.0], [20.0], [0], [0.1], [0], [0]]], np.float32)


class RefusingScreener:
    """A screener whose every answer is NOT SCREENED (as a crashed detector's would be)."""

    model_id, model_sha256, class_names = "broken@0", "0" * 64, ["gun", "knife"]

    def screen(self, frame: Frame) -> Result:
        return Result.not_screened("detector crashed", self.model_id)

    def close(self) -> None:
        pass


@functools.cache
def simulated(seed: int) -> tuple[np.ndarray, np.ndarray]:
    bag = simulate_bag(seed)
    return bag.high, bag.low


@pytest.fixture
def logged(
    tmp_path: Path, tiny_model_dir: MakeDir, users: UserStore
) -> Iterator[tuple[TestClient, Pipeline, Store]]:
    """Seven frames in a real image log: three alarms (lane 1, from "demo"), two clear
    (lane 2, uploads), one NOT SCREENED (lane 2) and one 8-bit colour frame (alarm)."""
    store = Store(tmp_path / "data")
    alarm = LocalScreener(Detector.load(tiny_model_dir([ALARM_OUTPUT])))
    pipeline = Pipeline(alarm, store=store)

    def add(seed: int, source: str, lane: int) -> None:
        high, low = simulated(seed)
        frame = Frame(high=high, low=low)
        ticket = pipeline.ingest(frame, Intake(source=source, bag=f"bag-{seed}", lane=lane))
        ticket.screened.result(30)

    for seed in (1, 2, 3):
        add(seed, "demo", 1)
    pipeline.swap_screener(LocalScreener(Detector.load(tiny_model_dir([CLEAR_OUTPUT]))))
    for seed in (4, 5):
        add(seed, "upload", 2)
    pipeline.swap_screener(RefusingScreener())
    add(6, "upload", 2)
    pipeline.swap_screener(alarm)
    rgb = Frame(rgb=np.full((48, 64, 3), 120, np.uint8))
    pipeline.ingest(rgb, Intake(source="upload", bag="colour", lane=2)).screened.result(30)
    ctx = AppContext(
        service=pipeline, users=users, store=store, export_dir=tmp_path / "data" / "exports"
    )
    with TestClient(create_app(ctx)) as client:
        client.headers["X-CSRF-Token"] = login(client, "olga")
        yield client, pipeline, store
    pipeline.close()
    store.close()


def ids(page: dict[str, object]) -> list[str]:
    return [str(item["id"]) for item in page["items"]]  # type: ignore[attr-defined]


FILTERS: list[tuple[dict[str, object], int]] = [
    ({}, 7),
    ({"alarm": "true"}, 4),
    ({"alarm": "false"}, 2),
    ({"not_screened": "true"}, 1),
    ({"not_screened": "false"}, 6),
    ({"class": "knife"}, 4),
    ({"class": "gun"}, 0),
    ({"source": "demo"}, 3),
    ({"source": "upload", "alarm": "false"}, 2),
    ({"lane": 2}, 4),
    ({"decision": "none"}, 7),
    ({"decision": "search"}, 0),
    ({"since": "2000-01-01T00:00:00Z"}, 7),
    ({"until": "2000-01-01T00:00:00Z"}, 0),
]


def test_filters(logged: tuple[TestClient, Pipeline, Store]) -> None:
    client, _, _ = logged
    for params, expected in FILTERS:  # one log for every case: filling it is the slow part
        page = client.get("/api/frames", params=params).json()
        assert page["total"] == expected == len(page["items"]), (params, page)


def test_pages_are_newest_first_and_add_up(logged: tuple[TestClient, Pipeline, Store]) -> None:
    client, pipeline, _ = logged
    pages = [client.get("/api/frames", params={"limit": 3, "offset": o}).json() for o in (0, 3, 6)]
    assert [len(p["items"]) for p in pages] == [3, 3, 1]
    assert all(p["total"] == 7 and p["limit"] == 3 for p in pages)
    all_ids = [i for p in pages for i in ids(p)]
    assert all_ids == [f.id for f in pipeline.recent()]  # memory is newest first too
    newest = pages[0]["items"][0]
    held = client.get(f"/api/frames/{newest['id']}").json()
    # One record shape from the log and from memory; one frame's also lists its decisions.
    assert set(newest) == set(held) - {"decisions"}
    assert (newest["state"], newest["alarm"], newest["detections"][0]["class"]) == (
        "SCREENED",
        True,
        "knife",
    )
    refused = client.get("/api/frames", params={"not_screened": "true"}).json()["items"][0]
    assert (refused["state"], refused["reason"]) == ("NOT_SCREENED", "detector crashed")


def test_a_decision_is_stored_with_its_operator(
    logged: tuple[TestClient, Pipeline, Store],
) -> None:
    client, pipeline, store = logged
    frame_id = pipeline.recent()[-1].id  # the first bag: an alarm
    response = client.post(
        f"/api/frames/{frame_id}/decision", json={"decision": "clear", "note": "laptop"}
    )
    assert response.status_code == 201, response.text
    decision = response.json()
    assert (decision["frame_id"], decision["decision"], decision["user"], decision["note"]) == (
        frame_id,
        "clear",
        "olga",
        "laptop",
    )
    assert store.get_frame(frame_id).decisions[-1].user == "olga"
    assert client.get(f"/api/frames/{frame_id}").json()["decision"] == "clear"
    assert ids(client.get("/api/frames", params={"decision": "clear"}).json()) == [frame_id]
    assert client.get("/api/frames", params={"decision": "none"}).json()["total"] == 6
    recent = client.get("/api/frames/recent").json()["items"]
    assert [f["decision"] for f in recent if f["id"] == frame_id] == ["clear"]


def test_one_frame_lists_every_decision_oldest_first(
    logged: tuple[TestClient, Pipeline, Store],
) -> None:
    client, pipeline, store = logged
    frame_id = pipeline.recent()[0].id
    assert client.get(f"/api/frames/{frame_id}").json()["decisions"] == []
    for decision in ("search", "threat"):
        posted = client.post(f"/api/frames/{frame_id}/decision", json={"decision": decision})
        assert posted.status_code == 201, posted.text
    expected = [("search", "olga"), ("threat", "olga")]
    record = client.get(f"/api/frames/{frame_id}").json()  # held in memory
    assert record["decision"] == "threat"
    assert [(d["decision"], d["user"]) for d in record["decisions"]] == expected
    # A service started later holds none of them: the image log answers alone.
    with (
        contextlib.closing(Pipeline(None, store=store)) as later,
        TestClient(
            create_app(AppContext(service=later, users=client.app.state.users, store=store))
        ) as other,
    ):
        login(other, "olga")
        record = other.get(f"/api/frames/{frame_id}").json()
    assert record["decision"] == "threat"
    assert [(d["decision"], d["user"]) for d in record["decisions"]] == expected


@pytest.mark.parametrize(
    ("frame_id", "body", "status", "code"),
    [
        ("f-19990101-000001", {"decision": "clear"}, 404, "unknown_frame"),
        (None, {"decision": "maybe"}, 422, "bad_request"),
        (None, {"decision": "clear", "note": "n" * 501}, 422, "bad_request"),
        (None, {"decision": "clear", "by": "someone else"}, 422, "bad_request"),
        (None, {}, 422, "bad_request"),
        ("%2e%2e", {"decision": "clear"}, 422, "bad_request"),
    ],
)
def test_bad_decisions_are_refused_in_one_shape(
    logged: tuple[TestClient, Pipeline, Store],
    frame_id: str | None,
    body: dict[str, object],
    status: int,
    code: str,
) -> None:
    client, pipeline, store = logged
    target = frame_id or pipeline.recent()[0].id
    response = client.post(f"/api/frames/{target}/decision", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert store.list_frames(decision="clear") == []


def png(response: object) -> np.ndarray:
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "image/png"  # type: ignore[attr-defined]
    data = np.frombuffer(response.content, np.uint8)  # type: ignore[attr-defined]
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


def test_image_views(logged: tuple[TestClient, Pipeline, Store]) -> None:
    client, pipeline, _ = logged
    frame = pipeline.recent()[-1]  # dual energy, alarmed
    url = f"/api/frames/{frame.id}/image"
    pseudo = png(client.get(url))
    assert pseudo.shape == (*frame.shape, 3)
    high, low = (
        png(client.get(url, params={"view": "high"})),
        png(client.get(url, params={"view": "low"})),
    )
    assert high.shape == low.shape == frame.shape  # one grey channel
    assert high.mean() > low.mean()  # the low energy is attenuated more
    material = cv2.cvtColor(png(client.get(url, params={"view": "material"})), cv2.COLOR_BGR2RGB)
    colours = {tuple(c) for c in material.reshape(-1, 3)}
    assert colours <= {(255, 255, 255), (235, 140, 30), (40, 170, 60), (40, 90, 220), (0, 0, 0)}
    assert (235, 140, 30) in colours  # a bag has organic matter
    boxed = png(client.get(url, params={"view": "high", "boxes": "1"}))
    assert boxed.shape == (*frame.shape, 3)  # boxes are drawn in colour
    # An 8-bit colour frame has no energy channels.
    colour = pipeline.recent()[0]
    assert png(client.get(f"/api/frames/{colour.id}/image")).shape == (48, 64, 3)
    response = client.get(f"/api/frames/{colour.id}/image", params={"view": "low"})
    assert response.status_code == 409
    assert "8-bit colour" in response.json()["error"]["message"]


def test_frames_no_longer_in_memory_come_from_the_log(
    logged: tuple[TestClient, Pipeline, Store], users: UserStore
) -> None:
    _, pipeline, store = logged
    fresh = Pipeline(None)  # a restarted service: nothing in memory
    oldest = pipeline.recent()[-1]
    with TestClient(create_app(AppContext(service=fresh, users=users, store=store))) as client:
        login(client, "vera")
        record = client.get(f"/api/frames/{oldest.id}").json()
        assert (record["id"], record["bag"], record["alarm"]) == (oldest.id, "bag-1", True)
        image = png(client.get(f"/api/frames/{oldest.id}/image", params={"boxes": "1"}))
        assert image.shape == (*oldest.shape, 3)
    fresh.close()


def test_a_vendor_exports_while_the_service_runs(
    logged: tuple[TestClient, Pipeline, Store],
) -> None:
    client, _, store = logged
    client.headers["X-CSRF-Token"] = login(client, "vera")
    response = client.post("/api/exports", json={"alarms": True, "class": "knife"})
    assert response.status_code == 201, response.text
    summary = response.json()
    assert summary["images"] == 4
    coco = json.loads(Path(summary["annotations_file"]).read_text())
    assert len(coco["images"]) == 4
    assert Path(summary["out"]).parent.name == "exports"
    newest = audit.entries(store.data_dir)[-1]  # the export is audited as the vendor
    assert (newest.action, newest.actor) == ("export", "user:vera")
    assert newest.details["path"] == summary["out"]
