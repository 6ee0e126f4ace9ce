"""Every refusal: its own plain-words message, and the active model, its pointer and the
installed models exactly as before."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.upgrade import audit, minisign
from edge.upgrade.bundle import BUNDLE_JSON, SIGNATURE
from edge.upgrade.errors import UpgradeRefusedError

from .device import FAILING_POLICY, Device, read_members, regular, write_members, write_suite

Members = list[tuple[tarfile.TarInfo, bytes | None]]


def _edit(device: Device, change: Callable[[Members], Members]) -> Path:
    good = device.bundle()
    return write_members(device.work / "edited.edgebundle", change(read_members(good)))


def _without(name: str) -> Callable[[Members], Members]:
    return lambda ms: [(i, d) for i, d in ms if i.name != name]


def _replace(name: str, edit: Callable[[bytes], bytes]) -> Callable[[Members], Members]:
    return lambda ms: [(i, edit(d) if i.name == name and d is not None else d) for i, d in ms]


def _plus(info: tarfile.TarInfo, data: bytes | None = None) -> Callable[[Members], Members]:
    return lambda ms: [*ms, (info, data)]


def _special(name: str, kind: bytes, **fields: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def _flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def _rerelease(data: bytes) -> bytes:
    doc = json.loads(data)
    doc["release"] = 99
    return json.dumps(doc).encode()


def no_signature(d: Device) -> Path:
    return _edit(d, _without(SIGNATURE))


def untrusted_key(d: Device) -> Path:
    return d.bundle(secret=minisign.generate_key())


def json_changed(d: Device) -> Path:
    return _edit(d, _replace(BUNDLE_JSON, _rerelease))


def member_changed(d: Device) -> Path:
    return _edit(d, _replace("model/model.onnx", _flip_last))


def member_added(d: Device) -> Path:
    return _edit(d, _plus(*regular("model/extra.txt", b"not signed")))


def member_missing(d: Device) -> Path:
    return _edit(d, _without("model/manifest.json"))


def wrong_size(d: Device) -> Path:
    return _edit(d, _replace("model/model.onnx", lambda b: b + b"\0"))


def dot_dot(d: Device) -> Path:
    return _edit(d, _plus(*regular("model/../../evil.sh", b"#!/bin/sh\n")))


def absolute(d: Device) -> Path:
    return _edit(d, _plus(*regular("/etc/evil.conf", b"x")))


def symlink(d: Device) -> Path:
    return _edit(d, _plus(_special("model/link", tarfile.SYMTYPE, linkname="/etc/passwd")))


def device_file(d: Device) -> Path:
    return _edit(d, _plus(_special("model/null", tarfile.CHRTYPE, devmajor=1, devminor=3)))


def big_bundle_json(d: Device) -> Path:
    def pad(members: Members) -> Members:
        data = next(m for i, m in members if i.name == BUNDLE_JSON)
        assert data is not None
        doc = json.loads(data) | {"padding": "x" * (1 << 20)}
        big = json.dumps(doc).encode()
        signature = minisign.sign(big, d.secret, "t").encode()
        swapped = _replace(BUNDLE_JSON, lambda _: big)(members)
        return _replace(SIGNATURE, lambda _: signature)(swapped)

    return _edit(d, pad)


def truncated(d: Device) -> Path:
    good = d.bundle().read_bytes()
    path = d.work / "truncated.edgebundle"
    path.write_bytes(good[: len(good) // 2])
    return path


def not_a_graph_for_its_manifest(d: Device) -> Path:
    # 6 = 4 + 2 classes in the graph; the manifest lists 4.
    return d.bundle(model_dir=d.model("0.2.0", outputs=[np.zeros((1, 6, 16), np.float32)]))


def failing_gate(d: Device) -> Path:
    shutil.rmtree(d.data / "suite")
    write_suite(d.data / "suite", FAILING_POLICY)
    return d.bundle()


def no_suite(d: Device) -> Path:
    shutil.rmtree(d.data / "suite")
    return d.bundle()


CASES: list[tuple[str, Callable[[Device], Path], dict[str, Any], str]] = [
    ("no signature", no_signature, {}, "no signature (bundle.json.minisig is missing)"),
    ("untrusted key", untrusted_key, {}, "signature made with untrusted key"),
    ("bundle.json changed", json_changed, {}, "signed file was changed after signing"),
    ("member changed", member_changed, {}, "'model/model.onnx' does not match its SHA-256"),
    ("member added", member_added, {}, "'model/extra.txt' is not listed in the signed"),
    ("member missing", member_missing, {}, "'model/manifest.json' listed in bundle.json is missing"),
    ("wrong size", wrong_size, {}, "the signed bundle.json says"),
    ("dot-dot path", dot_dot, {}, "'model/../../evil.sh' has an unsafe path"),
    ("absolute path", absolute, {}, "'/etc/evil.conf' has an unsafe path"),
    ("symlink member", symlink, {}, "'model/link' is a symbolic link"),
    ("device member", device_file, {}, "'model/null' is a character device"),
    ("oversized member", lambda d: d.bundle(), {"max_member_bytes": 256}, "is larger than the 256 bytes limit (upgrade.max_member_mb)"),
    ("oversized bundle.json", big_bundle_json, {}, "bundle.json is larger than 1 MiB"),
    ("oversized bundle", lambda d: d.bundle(), {"max_bundle_bytes": 1024}, "the bundle is larger than the 1 KiB limit"),
    ("wrong compatible", lambda d: d.bundle(compatible=["xray-single-v9"]), {}, "not compatible with this device: the bundle is for xray-single-v9; this device is xray-dual-energy-v1"),
    ("release not newer", lambda d: d.bundle(release=0), {}, "release 0 (tiny 0.2.0) is not newer than the installed release 0"),
    ("truncated archive", truncated, {}, "the archive is truncated or damaged"),
    ("unusable graph", not_a_graph_for_its_manifest, {}, "the model is not usable: class count 4"),
    ("gate failure", failing_gate, {}, "tiny 0.2.0 failed the regression gate"),
    ("no suite", no_suite, {}, "no regression suite available on this device"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "settings", "message"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_refusal_leaves_the_active_model_untouched(
    device: Device, make: Callable[[Device], Path], settings: dict[str, Any], message: str
) -> None:
    bundle = make(device)
    before = device.snapshot()
    with pytest.raises(UpgradeRefusedError) as caught:
        device.upgrader(**settings).install(bundle)
    assert message in caught.value.message
    assert device.snapshot() == before
    assert not any(device.store.incoming.iterdir()) and not any(device.store.staging.iterdir())
    last = audit.entries(device.data)[-1]
    assert (last.action, last.message) == ("upgrade-refused", caught.value.message)
    assert audit.verify(device.data).ok


def test_the_messages_differ(device: Device) -> None:
    assert len({c[3] for c in CASES}) == len(CASES)


def test_no_gate_is_a_refusal_never_a_pass(device: Device) -> None:
    before = device.snapshot()
    with pytest.raises(UpgradeRefusedError, match="no regression suite available"):
        device.upgrader(gate=None).install(device.bundle())
    assert device.snapshot() == before


def test_a_downgrade_needs_asking_for(device: Device) -> None:
    device.upgrader().install(device.bundle("0.3.0", release=3))
    older = device.bundle("0.2.0", release=2)
    with pytest.raises(UpgradeRefusedError, match="use --allow-downgrade"):
        device.upgrader().install(older)
    outcome = device.upgrader().install(older, allow_downgrade=True)
    assert outcome.model.model_id == "tiny@0.2.0"
