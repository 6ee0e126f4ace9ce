"""The running service's side of upgrades: `ModelSwitcher` keeps the pipeline on the active
model (a new one is loaded first, then swapped in between two frames), and `ModelManager`
is what the API calls: upgrade, rollback, the list of models.

The pointer can change under the service (`edge upgrade` or `edge rollback` in a shell), so
the switcher also looks at it every `upgrade.watch_s` seconds.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from edge.errors import EdgeError
from edge.upgrade.engine import UpgradeOutcome, Upgrader, UpgradeSettings
from edge.upgrade.gate import Gate
from edge.upgrade.health import HealthCheck, check_model
from edge.upgrade.model_store import InstalledModel, ModelStore

logger = logging.getLogger(__name__)


class Screener(Protocol):
    @property
    def model_id(self) -> str: ...
    def close(self) -> None: ...


class Swappable(Protocol):
    def swap_screener(self, new: Any) -> Any: ...


Loader = Callable[[Path], tuple[Screener | None, str | None]]


class ModelSwitcher:
    """Swaps the pipeline's screener whenever the store's active model changes."""

    def __init__(
        self,
        pipeline: Swappable,
        store: ModelStore,
        load: Loader,
        *,
        current: Screener | None,
        loaded: str | None,
        interval_s: float = 1.0,
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.load = load
        self.current = current
        self.loaded = loaded  # directory name of the model the pipeline screens with
        self.interval_s = interval_s
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sync(self) -> bool:
        """Load and swap in the active model if it is not the one screening; True if swapped."""
        with self._lock:
            try:
                pointer = self.store.read_pointer()
            except EdgeError as exc:
                self.last_error = exc.message
                return False
            if pointer is None or pointer.model == self.loaded:
                return False
            path = self.store.root / pointer.model
            screener, error = self.load(path)
            if screener is None:
                # Keep screening with the model in hand; the upgrade's health check (which
                # loads the model the same way) rolls a model that cannot load back.
                self.last_error = f"{pointer.model}: {error}"
                logger.error("active model %s not loaded: %s", pointer.model, error)
                return False
            old = self.pipeline.swap_screener(screener)
            self.current, self.loaded, self.last_error = screener, pointer.model, None
            if old is not None:
                old.close()
            return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="model-switcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sync()
            except Exception:  # the service must go on screening with the model it has
                logger.exception("model switch failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)

    def close_current(self) -> None:
        with self._lock:
            if self.current is not None:
                self.current.close()


class ModelManager:
    """Upgrades, rollbacks and the model list for the API, on one data directory."""

    def __init__(
        self,
        data_dir: Path,
        settings: UpgradeSettings,
        gate: Gate | None,
        *,
        health: HealthCheck = check_model,
        switcher: ModelSwitcher | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.settings = settings
        self.gate = gate
        self.health = health
        self.switcher = switcher
        self.store = ModelStore(self.data_dir)

    def upgrader(self, actor: str) -> Upgrader:
        return Upgrader(self.data_dir, self.settings, gate=self.gate, health=self.health,
                        actor=actor)  # fmt: skip

    def upgrade(self, bundle: Path, actor: str, allow_downgrade: bool = False) -> UpgradeOutcome:
        outcome = self.upgrader(actor).install(bundle, allow_downgrade=allow_downgrade)
        if self.switcher is not None:
            self.switcher.sync()
        return outcome

    def roll_back(self, actor: str) -> dict[str, Any]:
        now, before = self.upgrader(actor).roll_back()
        if self.switcher is not None:
            self.switcher.sync()
        return {
            "message": f"rolled back: {now.model_id} is active again (was {before.model_id})",
            "active": describe_model(now),
            "rolled_back_from": describe_model(before),
        }

    def listing(self) -> dict[str, Any]:
        return models_listing(self.store)


def _classes(model: InstalledModel) -> list[str]:
    try:
        manifest = json.loads((model.path / "manifest.json").read_text(encoding="utf-8"))
        return [str(c) for c in manifest.get("classes", [])]
    except (OSError, ValueError):
        return []


def describe_model(model: InstalledModel, state: str | None = None) -> dict[str, Any]:
    doc = model.as_json() | {"classes": _classes(model)}
    if state is not None:
        doc["state"] = state
    return doc


def models_listing(store: ModelStore) -> dict[str, Any]:
    """The active model (with its SHA-256 and pending/confirmed state), the previous one,
    every installed model with its test results, and the refused bundle hashes."""
    pointer = store.read_pointer()
    installed = store.installed()
    if pointer is None:
        return {"active": None, "previous": None, "models": [], "refused": []}
    states = {pointer.model: "active"}
    if pointer.previous is not None:
        states.setdefault(pointer.previous, "previous")
    models = [describe_model(m, states.get(m.dir_name, "installed")) for m in installed]
    by_dir = {m["dir"]: m for m in models}
    active = by_dir.get(pointer.model)
    if active is not None:
        active = active | {"state": pointer.state, "since": pointer.changed}
    return {
        "active": active,
        "previous": by_dir.get(pointer.previous) if pointer.previous else None,
        "models": models,
        "refused": list(pointer.refused),
    }
