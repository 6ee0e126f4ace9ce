"""Installed models and the `active` pointer, in `DATA/models/`.

    DATA/models/<name>-<version>-<sha12>/   one installed model (manifest.json, model.onnx,
                                            install.json: release, bundle hash, signer, tests)
    DATA/models/active                      the pointer: JSON {model, state, history, refused}

A model directory appears whole: it is built in DATA/upgrades/staging and renamed in. The
pointer is replaced whole: temp file, fsync, rename, directory fsync; so after a power cut
it names either the old model or the new one, never half of either. `state` is "pending"
from activation until the new model passed its health check (loaded, screened a frame),
then "confirmed"; a pending model found after a restart is checked again, and one that
fails goes back to the previous model, its bundle refused from then on.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from edge.detector.manifest import load_model_dir
from edge.errors import EdgeError
from edge.store.images import fsync_dir
from edge.upgrade.errors import UpgradeBusyError, UpgradeRefusedError

MODELS_DIRNAME = "models"
UPGRADES_DIRNAME = "upgrades"
POINTER_NAME = "active"
INSTALL_NAME = "install.json"
MAX_POINTER_BYTES = 1 << 20
State = Literal["pending", "confirmed"]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class ModelStoreError(EdgeError):
    """The model store on disk is not as this version left it; the message says what to do."""

    http_status = 500
    exit_status = 1


@dataclass(frozen=True)
class Pointer:
    """The active model (a directory name in DATA/models), its state, the models before it
    (newest last: what rollback returns to) and the bundle hashes refused for good."""

    model: str
    state: State = "confirmed"
    history: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    changed: str = field(default_factory=utc_now)

    @property
    def previous(self) -> str | None:
        return self.history[-1] if self.history else None

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "state": self.state,
            "history": list(self.history),
            "refused": list(self.refused),
            "changed": self.changed,
        }


@dataclass(frozen=True)
class InstalledModel:
    """One directory in DATA/models with what install.json says of it."""

    dir_name: str
    path: Path
    name: str
    version: str
    release: int
    model_sha256: str
    installed: str
    factory: bool = False
    bundle_sha256: str | None = None
    bundle_json_sha256: str | None = None
    key_id: str | None = None
    tests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.version}"

    def as_json(self) -> dict[str, Any]:
        return {
            "dir": self.dir_name,
            "id": self.model_id,
            "name": self.name,
            "version": self.version,
            "release": self.release,
            "sha256": self.model_sha256,
            "installed": self.installed,
            "factory": self.factory,
            "bundle_sha256": self.bundle_sha256,
            "key_id": self.key_id,
            "tests": self.tests,
        }


def model_dir_name(name: str, version: str, model_sha256: str) -> str:
    return f"{name}-{version}-{model_sha256[:12]}"


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` whole: temp file, fsync, rename, directory fsync."""
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        with tmp.open("xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


class ModelStore:
    """DATA/models and DATA/upgrades of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / MODELS_DIRNAME
        self.upgrades = self.data_dir / UPGRADES_DIRNAME
        self.pointer_path = self.root / POINTER_NAME
        self.incoming = self.upgrades / "incoming"
        self.staging = self.upgrades / "staging"

    # ------------------------------------------------------------------ locking, recovery

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store for one upgrade or rollback (released on exit or process death)."""
        self.upgrades.mkdir(parents=True, exist_ok=True)
        with (self.upgrades / ".lock").open("a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UpgradeBusyError(
                    "another upgrade or rollback is in progress on this device; wait for it "
                    "to finish and try again"
                ) from None
            yield

    def clean_leftovers(self) -> list[str]:
        """Remove what an interrupted upgrade left (copies, staging, temp files)."""
        removed: list[str] = []
        for folder in (self.incoming, self.staging):
            if folder.is_dir():
                for item in folder.iterdir():
                    shutil.rmtree(item) if item.is_dir() else item.unlink()
                    removed.append(str(item.relative_to(self.data_dir)))
        if self.root.is_dir():
            for item in self.root.glob(".*.tmp"):
                item.unlink()
                removed.append(str(item.relative_to(self.data_dir)))
        return removed

    # ------------------------------------------------------------------ the pointer

    def read_pointer(self) -> Pointer | None:
        try:
            data = self.pointer_path.read_bytes()[:MAX_POINTER_BYTES]
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(data)
            return Pointer(
                model=str(doc["model"]),
                state="pending" if doc["state"] == "pending" else "confirmed",
                history=tuple(str(h) for h in doc.get("history", [])),
                refused=tuple(str(r) for r in doc.get("refused", [])),
                changed=str(doc.get("changed", "")),
            )
        except (ValueError, KeyError, TypeError):
            raise ModelStoreError(
                f"{self.pointer_path}: the active-model pointer is damaged; restore it from a "
                "backup, or delete it to start again from the factory model"
            ) from None

    def write_pointer(self, pointer: Pointer) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        text = json.dumps(pointer.as_json(), indent=1) + "\n"
        write_atomic(self.pointer_path, text.encode("utf-8"))

    # ------------------------------------------------------------------ installed models

    def get(self, dir_name: str) -> InstalledModel:
        path = self.root / dir_name
        try:
            doc = json.loads((path / INSTALL_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ModelStoreError(
                f"{path}: not an installed model (install.json missing or damaged)"
            ) from None
        return InstalledModel(
            dir_name=dir_name,
            path=path,
            name=doc["name"],
            version=doc["version"],
            release=int(doc["release"]),
            model_sha256=doc["model_sha256"],
            installed=doc["installed"],
            factory=bool(doc.get("factory", False)),
            bundle_sha256=doc.get("bundle_sha256"),
            bundle_json_sha256=doc.get("bundle_json_sha256"),
            key_id=doc.get("key_id"),
            tests=list(doc.get("tests", [])),
        )

    def installed(self) -> list[InstalledModel]:
        if not self.root.is_dir():
            return []
        dirs = sorted(p.name for p in self.root.iterdir() if (p / INSTALL_NAME).is_file())
        return sorted((self.get(d) for d in dirs), key=lambda m: (m.release, m.installed))

    def active(self) -> InstalledModel | None:
        pointer = self.read_pointer()
        return None if pointer is None else self.get(pointer.model)

    def add(self, staged: Path, info: dict[str, Any]) -> InstalledModel:
        """Move a staged, checked model directory in (whole, by rename); returns it."""
        spec = load_model_dir(staged)
        manifest = spec.manifest
        name = model_dir_name(manifest.name, manifest.version, spec.model_sha256)
        doc = {
            "name": manifest.name,
            "version": manifest.version,
            "model_sha256": spec.model_sha256,
            "installed": utc_now(),
            **info,
        }
        (staged / INSTALL_NAME).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        for path in staged.rglob("*"):
            if path.is_file():
                _fsync_file(path)
        for folder in [staged, *(p for p in staged.rglob("*") if p.is_dir())]:
            fsync_dir(folder)
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / name
        if target.exists():
            # The same graph and manifest already installed (a reinstall): keep that copy,
            # and record this bundle's install.json over it.
            write_atomic(target / INSTALL_NAME, (staged / INSTALL_NAME).read_bytes())
            shutil.rmtree(staged)
        else:
            os.rename(staged, target)
        fsync_dir(self.root)
        fsync_dir(staged.parent)
        return self.get(name)

    def ensure_factory(self, factory_dir: Path) -> InstalledModel | None:
        """A fresh data directory: install the shipped model as the factory model (release 0)
        and make it active. Returns it, or None when a model is already active."""
        if self.read_pointer() is not None:
            return None
        self.staging.mkdir(parents=True, exist_ok=True)
        staged = self.staging / f"factory-{uuid.uuid4().hex}"
        staged.mkdir()
        for path in Path(factory_dir).iterdir():
            if path.is_file() and not path.is_symlink():
                shutil.copyfile(path, staged / path.name)
        try:
            model = self.add(staged, {"release": 0, "factory": True, "source": str(factory_dir)})
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        self.write_pointer(Pointer(model.dir_name))
        return model

    # ------------------------------------------------------------------ transitions

    def require_pointer(self) -> Pointer:
        pointer = self.read_pointer()
        if pointer is None:
            raise ModelStoreError(f"{self.root}: no active model (the factory model is missing)")
        return pointer

    def activate(self, dir_name: str) -> Pointer:
        """Make an installed model active, pending its health check."""
        pointer = self.require_pointer()
        history = (
            pointer.history if pointer.model == dir_name else (*pointer.history, pointer.model)
        )
        new = replace(pointer, model=dir_name, state="pending", history=history, changed=utc_now())
        self.write_pointer(new)
        return new

    def confirm(self) -> Pointer:
        new = replace(self.require_pointer(), state="confirmed", changed=utc_now())
        self.write_pointer(new)
        return new

    def roll_back(self, refuse: tuple[str, ...] = ()) -> tuple[Pointer, str]:
        """Back to the previous model; `refuse`: bundle hashes never to accept again.
        Returns the new pointer and the directory rolled back from."""
        pointer = self.require_pointer()
        if pointer.previous is None:
            raise UpgradeRefusedError(
                "rollback refused: there is no previous model to go back to", "rollback"
            )
        refused = tuple(dict.fromkeys((*pointer.refused, *(r for r in refuse if r))))
        new = Pointer(pointer.previous, "confirmed", pointer.history[:-1], refused, utc_now())
        self.write_pointer(new)
        return new, pointer.model

    def is_refused(self, *hashes: str) -> bool:
        pointer = self.read_pointer()
        return pointer is not None and any(h in pointer.refused for h in hashes)
