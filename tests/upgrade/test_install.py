"""Installing bundles end to end (in-process): accepted, gated, rolled back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from edge.upgrade import audit
from edge.upgrade.errors import UpgradeRefusedError
from edge.upgrade.manager import models_listing

from .device import FAILING_POLICY, Device, write_suite


def test_a_fresh_device_has_the_factory_model_active(device: Device) -> None:
    listing = models_listing(device.store)
    active = listing["active"]
    assert active["release"] == 0 and active["factory"] and active["state"] == "confirmed"
    assert active["id"] == "tiny@0.1.0" and listing["previous"] is None


def test_an_upgrade_is_accepted_and_can_be_rolled_back(device: Device) -> None:
    bundle = device.bundle("0.2.0", release=1)
    outcome = device.upgrader().install(bundle)
    assert outcome.message.startswith("upgrade accepted: tiny@0.2.0 (release 1) is active")
    listing = models_listing(device.store)
    assert listing["active"]["id"] == "tiny@0.2.0" and listing["active"]["state"] == "confirmed"
    assert listing["previous"]["id"] == "tiny@0.1.0"
    tests = listing["active"]["tests"]
    assert [t["origin"] for t in tests] == ["device"] and tests[0]["passed"]
    now, before = device.upgrader().roll_back()
    assert (now.model_id, before.model_id) == ("tiny@0.1.0", "tiny@0.2.0")
    assert models_listing(device.store)["active"]["id"] == "tiny@0.1.0"
    with pytest.raises(UpgradeRefusedError, match="no previous model"):
        device.upgrader().roll_back()


def test_bundle_tests_run_under_the_device_policy(device: Device) -> None:
    # The bundle brings a suite whose own policy would fail every model; the device's
    # policy (which this model passes) is the one applied.
    tests = write_suite(device.work / "bundle-tests", policy=FAILING_POLICY)
    outcome = device.upgrader().install(device.bundle("0.2.0", release=1, tests=tests))
    assert [r["origin"] for r in outcome.gate.runs] == ["device", "bundle"]
    assert all(r["passed"] for r in outcome.gate.runs)


def test_a_model_failing_its_health_check_goes_back_and_its_bundle_is_refused(
    device: Device,
) -> None:
    bundle = device.bundle("0.2.0", release=1)
    before = device.snapshot()
    with pytest.raises(UpgradeRefusedError, match="failed its health check") as caught:
        device.upgrader(health=lambda path: "screening crashed").install(bundle)
    assert "tiny@0.1.0 is active again and this bundle will be refused" in caught.value.message
    pointer, _, sha = device.snapshot()
    after = device.store.read_pointer()
    assert sha == before[2] and after is not None and after.state == "confirmed"
    with pytest.raises(UpgradeRefusedError, match="refused for good"):
        device.upgrader().install(bundle)
    assert device.snapshot()[0] == pointer


def test_service_start_installs_the_factory_model_and_settles_a_pending_one(
    tmp_path: Path, device: Device
) -> None:
    from edge.config import EdgeConfig, ModelConfig
    from edge.service import open_model_manager

    fresh = tmp_path / "fresh"
    config = EdgeConfig(model=ModelConfig(dir=device.factory))
    manager = open_model_manager(config, fresh)
    active = manager.store.active()
    assert active is not None and (active.model_id, active.release) == ("tiny@0.1.0", 0)

    # A power cut between the pointer swap and the health check, with a model that cannot
    # load: the next start rolls it back and refuses its bundle.
    device.upgrader().install(device.bundle("0.2.0", release=1))
    broken = device.store.active()
    assert broken is not None
    (broken.path / "model.onnx").write_bytes(b"not a graph")
    pointer = device.store.read_pointer()
    assert pointer is not None
    device.store.write_pointer(dataclasses.replace(pointer, state="pending"))
    manager = open_model_manager(config, device.data)  # the real, isolated health check
    listing = models_listing(manager.store)
    assert listing["active"]["id"] == "tiny@0.1.0"
    assert broken.bundle_sha256 in listing["refused"]
    assert audit.entries(device.data)[-1].action == "upgrade-rolled-back"
