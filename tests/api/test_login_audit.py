"""Logins, failed logins and logouts are recorded in the hash-chained audit log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.api.app import AppContext, create_app
from edge.auth import UserStore
from edge.pipeline import Pipeline
from edge.store import Store
from edge.upgrade import audit

from .accounts import TestClient, login


@pytest.fixture
def logged(
    service: Pipeline, users: UserStore, tmp_path: Path
) -> Iterator[tuple[TestClient, Path]]:
    data = tmp_path / "data"
    with Store(data) as store:
        app = create_app(AppContext(service=service, users=users, store=store))
        with TestClient(app) as client:
            yield client, data


def test_login_failure_and_logout_are_audited(logged: tuple[TestClient, Path]) -> None:
    client, data = logged
    refused = client.post("/api/login", json={"name": "olga", "password": "wrong password"})
    assert refused.status_code == 401
    client.headers["X-CSRF-Token"] = login(client, "olga")
    assert client.post("/api/logout").status_code == 200
    entries = audit.entries(data)
    assert [(e.action, e.actor) for e in entries] == [
        ("login-failed", "user:olga"),
        ("login", "user:olga"),
        ("logout", "user:olga"),
    ]
    assert entries[1].details["role"] == "operator"
    assert all(e.details["address"] for e in entries)
    assert "wrong password" not in str([e.as_json() for e in entries])  # no secrets kept
    assert audit.verify(data).ok
