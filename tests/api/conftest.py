"""API fixtures: a real user store (users.db in a temp dir), a pipeline on a tiny real ONNX
model, and clients logged out or logged in as the operator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge.api.app import AppContext, create_app
from edge.auth import UserStore
from edge.detector import Detector
from edge.pipeline import LocalScreener, Pipeline

from .accounts import ALARM_OUTPUT, FAST_KDF, PASSWORD, USERS, TestClient, login

MakeDir = Callable[..., Path]


@pytest.fixture
def users(tmp_path: Path) -> Iterator[UserStore]:
    store = UserStore(tmp_path / "data", kdf=FAST_KDF)
    for name, role in USERS.items():
        store.add_user(name, role, PASSWORD)
    yield store
    store.close()


@pytest.fixture
def service(tiny_model_dir: MakeDir) -> Iterator[Pipeline]:
    pipeline = Pipeline(LocalScreener(Detector.load(tiny_model_dir([ALARM_OUTPUT]))))
    yield pipeline
    pipeline.close()


@pytest.fixture
def client(service: Pipeline, users: UserStore) -> Iterator[TestClient]:
    """Not logged in."""
    with TestClient(create_app(AppContext(service=service, users=users, version="9.9.9"))) as c:
        yield c


@pytest.fixture
def operator(client: TestClient) -> TestClient:
    """`client`, logged in as the operator, sending its CSRF token on every request."""
    client.headers["X-CSRF-Token"] = login(client, "olga")
    return client
