"""A small device for upgrade tests (the `device` fixture, see conftest.py): a data directory with a tiny factory model, a trusted
vendor key, and a tiny regression suite whose policy a tiny model passes."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.detector import Detector
from edge.errors import EdgeError
from edge.frames import ScreeningState
from edge.upgrade import minisign
from edge.upgrade.bundle import build_bundle
from edge.upgrade.engine import Upgrader, UpgradeSettings
from edge.upgrade.gate import Gate, RegressionGate
from edge.upgrade.health import HealthCheck, known_frame
from edge.upgrade.model_store import ModelStore
from edge.validation.suite_build import DatasetEntry, write_manifest, write_policy

# Tiny models detect nothing: a policy with no Pd bars and no projection test passes them.
PASSING_POLICY = """
[slices]
report = ["clutter"]
min_samples = 1
[non_regression]
required = false
[behaviour]
repeat_frames = 1
flip_frames = 0
projection_per_class = 0
"""
FAILING_POLICY = PASSING_POLICY + "[absolute.pd_min]\ngun = 0.5\n"


def write_suite(root: Path, policy: str = PASSING_POLICY, images: int = 4) -> Path:
    """A suite of `images` random 64x48 pseudo-colour frames, a gun box in every other one."""
    folder = root / "set"
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    doc: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": 1, "name": "gun"}, {"id": 2, "name": "knife"}],
    }
    for i in range(1, images + 1):
        name = f"images/{i:04d}.png"
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (48, 64, 3), np.uint8))
        doc["images"].append({"id": i, "file_name": name, "width": 64, "height": 48,
                              "attributes": {"clutter": "low", "bag": f"bag-{i}"}})  # fmt: skip
        if i % 2:
            doc["annotations"].append({"id": i, "image_id": i, "category_id": 1,
                                       "bbox": [10, 10, 20, 12], "area": 240, "iscrowd": 0})  # fmt: skip
    (folder / "annotations.json").write_text(json.dumps(doc))
    write_policy(root, policy)
    write_manifest(root, name="tiny-suite", label_version=1, datasets=[DatasetEntry("set")])
    return root


def local_health(path: Path) -> str | None:
    """The health check in-process (the real one spawns a process: seconds per call)."""
    try:
        Detector.load(path).detect(known_frame())
    except EdgeError as exc:
        return exc.message
    return None


@dataclass
class Device:
    data: Path
    settings: UpgradeSettings
    secret: minisign.SecretKey
    factory: Path
    make_model: Callable[..., Path]
    work: Path
    counter: list[int] = field(default_factory=lambda: [0])

    @property
    def store(self) -> ModelStore:
        return ModelStore(self.data)

    def upgrader(
        self, gate: Gate | None | str = "suite", health: HealthCheck = local_health, **kw: Any
    ) -> Upgrader:
        settings = self.settings.__class__(**{**self.settings.__dict__, **kw})
        chosen = RegressionGate(self.data / "suite") if gate == "suite" else gate
        assert not isinstance(chosen, str)
        return Upgrader(self.data, settings, gate=chosen, health=health, actor="test")

    def model(self, version: str = "0.2.0", **kw: Any) -> Path:
        def edit(manifest: dict[str, Any]) -> None:
            manifest["version"] = version
            if "edit" in kw:
                kw["edit"](manifest)

        rest = {k: v for k, v in kw.items() if k != "edit"}
        return self.make_model(edit=edit, **rest)

    def bundle(
        self,
        version: str = "0.2.0",
        release: int = 1,
        *,
        compatible: list[str] | None = None,
        tests: Path | None = None,
        secret: minisign.SecretKey | None = None,
        model_dir: Path | None = None,
    ) -> Path:
        self.counter[0] += 1
        out = self.work / f"b{self.counter[0]}-{version}.edgebundle"
        path, _ = build_bundle(
            model_dir or self.model(version),
            secret or self.secret,
            version=version,
            release=release,
            compatible=compatible or ["xray-dual-energy-v1"],
            tests_dir=tests,
            out=out,
        )
        return path

    def snapshot(self) -> tuple[bytes, list[str], str]:
        """The pointer's bytes, the installed model directories, the active model's hash."""
        store = self.store
        active = store.active()
        assert active is not None
        dirs = sorted(p.name for p in store.root.iterdir())
        return store.pointer_path.read_bytes(), dirs, active.model_sha256


@pytest.fixture
def device(tmp_path: Path, tiny_model_dir: Callable[..., Path]) -> Device:
    data = tmp_path / "data"
    (data / "keys").mkdir(parents=True)
    secret = minisign.generate_key()
    (data / "keys" / "vendor.pub").write_text(secret.public_key.to_text())
    write_suite(data / "suite")
    factory = tiny_model_dir()
    settings = UpgradeSettings(
        key_dirs=(data / "keys",), suite_dir=data / "suite", factory_dir=factory
    )
    work = tmp_path / "work"
    work.mkdir()
    dev = Device(data, settings, secret, factory, tiny_model_dir, work)
    dev.upgrader(gate=None).prepare()
    return dev


# ----------------------------------------------------------------------------- tar surgery


def read_members(path: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    with tarfile.open(path, "r:*") as tar:
        out = []
        for m in tar.getmembers():
            handle = tar.extractfile(m) if m.isreg() else None
            out.append((m, handle.read() if handle else None))
        return out


def write_members(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def screens(path: Path) -> bool:
    """The model directory loads and screens the known frame."""
    from edge.pipeline import LocalScreener

    result = LocalScreener(Detector.load(path)).screen(known_frame())
    return result.state is ScreeningState.SCREENED
