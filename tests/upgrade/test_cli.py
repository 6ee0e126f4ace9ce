"""The verbs: `edge bundle keygen|build|verify`, `edge upgrade`, `edge models`, `edge rollback`
(in-process through edge.cli.main; the power-cut test runs them as processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main
from edge.upgrade import minisign

from .device import Device, read_members, write_members


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    out = capsys.readouterr().out
    doc = json.loads(out)
    assert isinstance(doc, dict)
    return doc


def test_keygen_build_verify(
    device: Device, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "vendor.key"
    assert main(["bundle", "keygen", "--key", str(key)]) == 0
    public = minisign.read_public_key(tmp_path / "vendor.pub")
    assert f"key {public.id_text}" in capsys.readouterr().out
    assert main(["bundle", "keygen", "--key", str(key)]) == 2  # never overwritten
    out = tmp_path / "tiny.edgebundle"
    model = device.model("0.2.0")
    args = ["bundle", "build", str(model), "--key", str(key), "--version", "0.2.0",
            "--release", "4", "--compatible", "xray-dual-energy-v1", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert "tiny 0.2.0 release 4" in capsys.readouterr().out
    verify = ["bundle", "verify", str(out), "--pubkey", str(tmp_path / "vendor.pub"), "--json"]
    assert main(verify) == 0
    doc = _json(capsys)
    assert doc["valid"] is True and doc["key_id"] == public.id_text and doc["release"] == 4
    members = read_members(out)
    edited = [(i, d + b"!" if i.name == "model/manifest.json" and d else d) for i, d in members]
    write_members(out, edited)
    assert main(verify) == 1
    err = capsys.readouterr().err
    assert "NOT valid" in err and "the signed bundle.json says" in err
    assert main(["bundle", "build", str(model), "--key", str(key), "--version", "9.9.9",
                 "--release", "1", "--compatible", "x"]) == 2  # fmt: skip


def test_upgrade_models_rollback(device: Device, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data", str(device.data)]
    bundle = device.bundle("0.2.0", release=1)
    assert main(["upgrade", str(bundle), "--json", *data]) == 0
    doc = _json(capsys)
    assert doc["accepted"] is True and doc["model"]["id"] == "tiny@0.2.0"  # type: ignore[index]
    assert main(["models", "--json", *data]) == 0
    listing = _json(capsys)
    active = listing["active"]
    assert isinstance(active, dict) and active["id"] == "tiny@0.2.0"
    assert len(str(active["sha256"])) == 64 and active["state"] == "confirmed"
    assert main(["upgrade", str(bundle), *data]) == 1
    assert "is not newer than the installed release 1" in capsys.readouterr().err
    assert main(["upgrade", str(device.work / "absent.edgebundle"), *data]) == 2
    assert main(["rollback", *data]) == 0
    assert capsys.readouterr().out == "rolled back: tiny@0.1.0 is active again (was tiny@0.2.0)\n"
    assert main(["models", *data]) == 0
    shown = capsys.readouterr().out
    assert "* tiny@0.1.0" in shown and "tiny@0.2.0" in shown and "device suite" in shown
    assert main(["audit", "verify", *data]) == 0
