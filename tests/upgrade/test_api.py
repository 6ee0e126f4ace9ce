"""The model routes on a real model store: list, upgrade, refusal, rollback."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from edge.api.app import AppContext, create_app
from edge.auth import ScryptParams, UserStore
from edge.detector import Detector
from edge.pipeline import LocalScreener, Pipeline
from edge.upgrade.manager import ModelManager, ModelSwitcher

from .device import Device, local_health

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


def _load(path: Path) -> tuple[LocalScreener, None]:
    return LocalScreener(Detector.load(path)), None


@pytest.fixture
def client(device: Device) -> Iterator[tuple[TestClient, Pipeline]]:
    users = UserStore(device.work / "users", kdf=ScryptParams(log2_n=8, r=8, p=1))
    token = users.create_token(users.add_user("tom", "technician", "pw pw pw pw").name)
    active = device.store.active()
    assert active is not None
    pipeline = Pipeline(_load(active.path)[0])
    switcher = ModelSwitcher(pipeline, device.store, _load, current=pipeline.screener,
                             loaded=active.dir_name)  # fmt: skip
    manager = ModelManager(device.data, device.settings, device.upgrader().gate,
                           health=local_health, switcher=switcher)  # fmt: skip
    app = create_app(AppContext(service=pipeline, users=users, models=manager))
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as c:
        yield c, pipeline
    pipeline.close()
    users.close()


def test_upgrade_list_refuse_and_roll_back(
    client: tuple[TestClient, Pipeline], device: Device
) -> None:
    http, pipeline = client
    listing = http.get("/api/models").json()
    assert listing["active"]["id"] == "tiny@0.1.0" and listing["active"]["release"] == 0
    assert listing["running"]["id"] == "tiny@0.1.0"

    bundle = device.bundle("0.2.0", release=1)
    answer = http.post("/api/models/upgrade", json={"bundle": str(bundle)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["message"].startswith("upgrade accepted: tiny@0.2.0")
    assert pipeline.model_id == "tiny@0.2.0"  # switched by the route, not a later poll
    listing = http.get("/api/models").json()
    assert listing["active"]["id"] == "tiny@0.2.0" and listing["previous"]["id"] == "tiny@0.1.0"
    assert {m["state"] for m in listing["models"]} == {"active", "previous"}

    again = http.post("/api/models/upgrade", json={"bundle": str(bundle)})
    assert again.status_code == 422
    assert again.json()["error"] == {
        "code": "upgrade_refused",
        "message": "bundle refused: release 1 (tiny 0.2.0) is not newer than the installed "
        "release 1 (tiny@0.2.0); to install an older release on purpose, use --allow-downgrade",
    }
    missing = http.post("/api/models/upgrade", json={"bundle": "relative.edgebundle"})
    assert missing.status_code == 400

    back = http.post("/api/models/rollback")
    assert back.status_code == 200
    assert back.json()["message"] == "rolled back: tiny@0.1.0 is active again (was tiny@0.2.0)"
    assert pipeline.model_id == "tiny@0.1.0"
    refused = http.post("/api/models/rollback")
    assert refused.status_code == 422 and "no previous model" in refused.json()["error"]["message"]
