"""Test runs recorded in the image log (as `edge test` and the upgrade gate record them)
are listed, shown and their reports served over the API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.api.app import AppContext, create_app
from edge.auth import UserStore
from edge.pipeline import Pipeline
from edge.store import Store
from edge.store.test_runs import add_test_run, run_row

from .accounts import TestClient, login


def report(run_id: str, passed: bool) -> dict[str, object]:
    """The fields of a regression report that a run row keeps (edge/validation/report.py)."""
    return {
        "run_id": run_id,
        "created": "2026-11-27T10:00:00Z",
        "model": {"id": "demo-xray-det@1.0.0", "sha256": "ab" * 32},
        "baseline": None,
        "suite": {"name": "standard", "sha256": "cd" * 32, "label_version": 1},
        "gate": {"passed": passed, "failures": [] if passed else [{"check": "pd", "slice": "all"}]},
        "metrics": {"summary": {"map50": 0.5}},
        "sha256": "ef" * 32,
    }


@pytest.fixture
def logged(tmp_path: Path, users: UserStore) -> Iterator[tuple[TestClient, Store]]:
    store = Store(tmp_path / "data")
    pipeline = Pipeline(None, store=store)
    for run_id, passed in (("t-1", True), ("t-2", False)):
        row = run_row(report(run_id, passed))
        store.submit_write(lambda db, row=row: add_test_run(db, row)).result()
    with TestClient(create_app(AppContext(service=pipeline, users=users, store=store))) as client:
        client.headers["X-CSRF-Token"] = login(client, "olga")
        yield client, store
    pipeline.close()
    store.close()


def test_runs_are_listed_newest_first_and_shown(logged: tuple[TestClient, Store]) -> None:
    client, _ = logged
    page = client.get("/api/tests").json()
    assert page["total"] == 2 and [r["id"] for r in page["items"]] == ["t-2", "t-1"]
    assert [r["passed"] for r in page["items"]] == [False, True]
    assert page["items"][0]["failures"] == 1 and "report" not in page["items"][0]
    one = client.get("/api/tests/t-1").json()
    assert one["model"] == "demo-xray-det@1.0.0" and one["suite_name"] == "standard"
    doc = client.get("/api/tests/t-2/report").json()
    assert doc["gate"]["passed"] is False and doc["sha256"] == "ef" * 32
    missing = client.get("/api/tests/t-3/report")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_test_run"


def test_runs_need_a_login(logged: tuple[TestClient, Store]) -> None:
    client, _ = logged
    client.post("/api/logout")
    assert client.get("/api/tests").status_code == 401


def test_the_report_stylesheet_is_served_and_formats_are_checked(
    logged: tuple[TestClient, Store],
) -> None:
    client, _ = logged
    css = client.get("/api/tests/report.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ".verdict" in css.text
    assert client.get("/api/tests/t-1/report?format=pdf").status_code == 422
    assert client.get("/api/tests/t-1/report?format=json").json()["sha256"] == "ef" * 32
