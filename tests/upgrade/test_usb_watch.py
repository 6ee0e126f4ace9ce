"""The USB bundle watcher on a real device, engine and audit log: a settled bundle on a stick
is installed once per insertion; several bundles, refusals, symlinks out of the watched
directory and a missing directory change nothing and say so. Scans are driven by hand."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from edge.config import EdgeConfig, UpgradeConfig
from edge.service import run_service, usb_watcher
from edge.upgrade import audit, minisign
from edge.upgrade.manager import ModelManager
from edge.upgrade.usb_watch import ONE_PER_STICK, UsbWatcher

from .device import Device, local_health


def _manager(device: Device) -> ModelManager:
    return ModelManager(device.data, device.settings, device.upgrader().gate, health=local_health)


def _stick(root: Path, name: str, *bundles: Path) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for bundle in bundles:
        shutil.copy2(bundle, folder / bundle.name)
    return folder


def _active(device: Device) -> str:
    active = device.store.active()
    assert active is not None
    return active.model_id


def _usb_entries(device: Device) -> list[audit.AuditEntry]:
    return [e for e in audit.entries(device.data) if e.actor.startswith("usb:")]


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_a_settled_bundle_is_installed_once_per_insertion(device: Device, tmp_path: Path) -> None:
    root = tmp_path / "media"
    bundle = device.bundle("0.2.0", release=1)
    stick = _stick(root, "STICK", bundle)
    (stick / f"._{bundle.name}").write_bytes(b"\0" * 4096)  # macOS metadata: not a bundle
    (stick / "notes.txt").write_text("release notes")
    watcher = UsbWatcher(root, _manager(device))
    assert watcher.scan_once() == []  # first seen: not yet known to be settled
    assert _active(device) == "tiny@0.1.0"

    [done] = watcher.scan_once()
    assert done.accepted and done.model == "tiny@0.2.0" and done.stick == "STICK"
    assert _active(device) == "tiny@0.2.0"
    entries = _usb_entries(device)
    assert {e.actor for e in entries} == {"usb:STICK"}
    assert "upgrade-confirmed" in {e.action for e in entries}
    last = watcher.status()["last"]
    assert last["accepted"] and last["bundle"] == bundle.name
    assert last["message"].startswith("upgrade accepted: tiny@0.2.0")
    assert watcher.status()["scanning"] == "ok" and watcher.status()["watching"] == str(root)

    for _ in range(3):  # left on the stick: not tried again
        assert watcher.scan_once() == []
    assert len(_usb_entries(device)) == len(entries)

    shutil.move(stick, tmp_path / "pulled")  # pulled out ...
    assert watcher.scan_once() == []
    shutil.move(tmp_path / "pulled", stick)  # ... and in again: tried again
    assert watcher.scan_once() == []
    [again] = watcher.scan_once()
    assert not again.accepted and "is not newer than the installed release" in again.message
    assert _active(device) == "tiny@0.2.0"


def test_a_bundle_being_written_waits_until_it_settles(device: Device, tmp_path: Path) -> None:
    data = device.bundle("0.2.0", release=1).read_bytes()
    root = tmp_path / "media"
    target = _stick(root, "STICK") / "model.edgebundle"
    watcher = UsbWatcher(root, _manager(device))
    snapshot = device.snapshot()
    half = len(data) // 2
    target.write_bytes(data[:half])
    assert watcher.scan_once() == []
    with target.open("ab") as out:
        out.write(data[half:])
    assert watcher.scan_once() == []  # grew since the last scan: still being written
    assert device.snapshot() == snapshot and _usb_entries(device) == []
    [done] = watcher.scan_once()
    assert done.accepted and _active(device) == "tiny@0.2.0"


def test_a_stick_with_two_bundles_is_refused(
    device: Device, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "media"
    _stick(root, "STICK", device.bundle("0.2.0", release=1), device.bundle("0.3.0", release=2))
    watcher = UsbWatcher(root, _manager(device))
    snapshot = device.snapshot()
    with caplog.at_level(logging.WARNING):
        for _ in range(4):
            assert watcher.scan_once() == []
    assert device.snapshot() == snapshot and _usb_entries(device) == []
    last = watcher.status()["last"]
    assert not last["accepted"] and last["stick"] == "STICK"
    assert ONE_PER_STICK in last["message"] and "found 2" in last["message"]
    assert _warnings(caplog, ONE_PER_STICK) == 1  # said once, not every scan


def test_two_bundles_at_the_top_of_the_root_are_refused(device: Device, tmp_path: Path) -> None:
    root = tmp_path / "stick"  # the watched directory is itself the one stick's mount
    root.mkdir()
    for bundle in (device.bundle("0.2.0", release=1), device.bundle("0.3.0", release=2)):
        shutil.copy2(bundle, root)
    watcher = UsbWatcher(root, _manager(device))
    snapshot = device.snapshot()
    assert watcher.scan_once() == [] and watcher.scan_once() == []
    assert device.snapshot() == snapshot
    assert ONE_PER_STICK in watcher.status()["last"]["message"]


def test_a_refused_bundle_leaves_the_model_and_is_reported(
    device: Device, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "media"
    _stick(root, "VENDOR", device.bundle(secret=minisign.generate_key()))
    watcher = UsbWatcher(root, _manager(device))
    snapshot = device.snapshot()
    with caplog.at_level(logging.WARNING):
        assert watcher.scan_once() == []
        [done] = watcher.scan_once()
        assert watcher.scan_once() == []  # not retried while it stays
    assert not done.accepted and "signature made with untrusted key" in done.message
    assert device.snapshot() == snapshot
    last = watcher.status()["last"]
    assert not last["accepted"] and last["model"] is None and last["stick"] == "VENDOR"
    assert "untrusted key" in last["message"]
    assert _warnings(caplog, "signature made with untrusted key") == 1
    refused = [e for e in _usb_entries(device) if e.action == "upgrade-refused"]
    assert [e.actor for e in refused] == ["usb:VENDOR"]


def test_symlinks_out_of_the_root_are_not_followed(
    device: Device, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outside = _stick(tmp_path, "outside", device.bundle("0.2.0", release=1))
    root = tmp_path / "media"
    root.mkdir()
    (root / "LINKED").symlink_to(outside, target_is_directory=True)
    (_stick(root, "STICK") / "model.edgebundle").symlink_to(next(outside.iterdir()))
    (root / "top.edgebundle").symlink_to(next(outside.iterdir()))
    watcher = UsbWatcher(root, _manager(device))
    snapshot = device.snapshot()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert watcher.scan_once() == []
    assert device.snapshot() == snapshot and _usb_entries(device) == []
    assert _warnings(caplog, "is a symbolic link; ignored") == 3  # each one once


def test_a_missing_root_is_reported_and_watching_goes_on(device: Device, tmp_path: Path) -> None:
    root = tmp_path / "media"
    watcher = UsbWatcher(root, _manager(device))
    assert watcher.scan_once() == []
    status = watcher.status()
    assert status["scanning"].startswith(f"cannot read {root}: ") and status["last"] is None
    _stick(root, "STICK", device.bundle("0.2.0", release=1))
    assert watcher.scan_once() == [] and watcher.status()["scanning"] == "ok"
    [done] = watcher.scan_once()
    assert done.accepted
    shutil.move(root, tmp_path / "away")
    root.write_text("not a directory")  # gone, and something else in its place
    assert watcher.scan_once() == []
    assert watcher.status()["scanning"] == f"cannot read {root}: Not a directory"
    root.unlink()
    shutil.move(tmp_path / "away", root)  # back: what it holds counts as inserted again
    assert watcher.scan_once() == []
    [again] = watcher.scan_once()
    assert not again.accepted and "is not newer" in again.message
    assert watcher.status()["scanning"] == "ok"


def test_a_crowded_directory_is_read_only_so_far(
    device: Device, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "media"
    stick = _stick(root, "STICK")
    for i in range(20):
        (stick / f"file{i:02d}.txt").write_text("x")
    watcher = UsbWatcher(root, _manager(device), max_entries=8)
    with caplog.at_level(logging.WARNING):
        assert watcher.scan_once() == [] and watcher.scan_once() == []
    assert _warnings(caplog, "holds more than 8 entries; the rest are ignored") == 1


def test_a_busy_store_is_tried_again_at_the_next_scan(device: Device, tmp_path: Path) -> None:
    root = tmp_path / "media"
    _stick(root, "STICK", device.bundle("0.2.0", release=1))
    watcher = UsbWatcher(root, _manager(device))
    assert watcher.scan_once() == []
    with device.store.lock():  # another upgrade is running
        assert watcher.scan_once() == []
    assert watcher.status()["last"] is None and _active(device) == "tiny@0.1.0"
    [done] = watcher.scan_once()
    assert done.accepted and _active(device) == "tiny@0.2.0"


def test_the_wiring_needs_the_key_and_a_model_store(device: Device, tmp_path: Path) -> None:
    manager = _manager(device)
    assert usb_watcher(EdgeConfig(), manager) is None  # unset: off
    config = EdgeConfig(upgrade=UpgradeConfig(usb_dir=tmp_path, usb_scan_s=0.5))
    assert usb_watcher(config, None) is None  # an explicit --model: nothing to upgrade
    watcher = usb_watcher(config, manager)
    assert watcher is not None and watcher.root == tmp_path and watcher.interval_s == 0.5


def test_the_service_starts_and_stops_the_watcher(
    device: Device, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "media"
    _stick(root, "STICK", device.bundle("0.2.0", release=1), device.bundle("0.3.0", release=2))
    config = EdgeConfig.model_validate(
        {"server": {"port": 0}, "upgrade": {"usb_dir": str(root), "usb_scan_s": 0.1}}
    )
    stop = threading.Event()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            run_service(config, data_dir=tmp_path / "served", demo=False, stop=stop)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    service = threading.Thread(target=serve)
    with caplog.at_level(logging.INFO):
        service.start()
        deadline = time.monotonic() + 60
        while _warnings(caplog, ONE_PER_STICK) == 0 and time.monotonic() < deadline:
            assert service.is_alive(), errors
            time.sleep(0.05)
        assert any(t.name == "usb-watcher" for t in threading.enumerate())
        urls: list[str] = []
        while not urls and time.monotonic() < deadline:  # the API starts after the watcher
            urls = [str(r.args[0]) for r in caplog.records if r.msg == "operator UI on %s"]
            time.sleep(0.05)
        url = urls[0]
        health = httpx.get(f"{url}api/health", timeout=10).json()
        usb = [s for s in health["sources"] if s["source"] == f"usb:{root}"]
        assert usb and usb[0]["state"] == "watching" and usb[0]["last"]["accepted"] is False
        assert not any("usb:" in problem for problem in health["degraded"])
        stop.set()
        service.join(60)
    assert not service.is_alive() and errors == []
    assert _warnings(caplog, ONE_PER_STICK) == 1
    assert not any(t.name == "usb-watcher" for t in threading.enumerate())
