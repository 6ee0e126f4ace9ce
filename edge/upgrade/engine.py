"""Installing a bundle, step by step, each recorded in the audit log:

    copy -> verify -> extract -> check -> gate -> store -> activate -> health -> confirm

Until `activate` nothing the service reads has changed; a refusal at any step leaves the
active model as it was. `activate` swaps the pointer (pending); `health` loads the new
model in its own process and screens a known frame; `confirm` marks it confirmed, or the
previous model comes back and the bundle is refused from then on. A power cut at any point
is repaired by `prepare()` at the next start: leftovers removed, a pending model checked.

Test-only: with EDGE_TEST_KILL_AT=<step> in the environment the process kills itself
(SIGKILL) as that step begins, to test what a power cut there leaves.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.config import DEFAULT_MODEL_DIR, EdgeConfig
from edge.errors import EdgeError
from edge.upgrade import archive, audit, minisign
from edge.upgrade.bundle import MODEL_PREFIX, TESTS_PREFIX, describe
from edge.upgrade.errors import KeyFileError, UpgradeRefusedError
from edge.upgrade.gate import Gate, GateResult, format_failures, no_suite
from edge.upgrade.health import HealthCheck, check_model
from edge.upgrade.model_store import InstalledModel, ModelStore

logger = logging.getLogger(__name__)

KILL_ENV = "EDGE_TEST_KILL_AT"
STEPS = ("copy", "verify", "extract", "check", "gate", "store", "activate", "health", "confirm")


def _step(name: str) -> None:
    if os.environ.get(KILL_ENV) == name:  # test-only: a power cut as this step begins
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class UpgradeSettings:
    """The device's side of the checks: what it is, whom it trusts, what it accepts."""

    compatible: str = "xray-dual-energy-v1"
    key_dirs: tuple[Path, ...] = ()
    max_bundle_bytes: int = 1024 << 20
    max_member_bytes: int = 512 << 20
    suite_dir: Path | None = None
    factory_dir: Path = DEFAULT_MODEL_DIR
    # Set: an upgrade needs a passed test-piece check at most this many hours old.
    testpiece_max_age_h: float | None = None

    @classmethod
    def from_config(cls, config: EdgeConfig, data_dir: Path) -> UpgradeSettings:
        up, piece = config.upgrade, config.calibration.testpiece
        keys = (data_dir / "keys", *((up.keys_dir,) if up.keys_dir else ()))
        return cls(
            compatible=up.compatible,
            key_dirs=keys,
            max_bundle_bytes=up.max_bundle_mb << 20,
            max_member_bytes=up.max_member_mb << 20,
            suite_dir=up.suite_dir or data_dir / "suite",
            factory_dir=config.model.dir or DEFAULT_MODEL_DIR,
            testpiece_max_age_h=piece.max_age_h if piece.required_for_upgrade else None,
        )

    def trusted_keys(self) -> list[minisign.PublicKey]:
        keys = []
        for folder in self.key_dirs:
            for path in sorted(folder.glob("*.pub")) if folder.is_dir() else []:
                try:
                    keys.append(minisign.read_public_key(path))
                except KeyFileError as exc:
                    logger.warning("trusted key skipped: %s", exc.message)
        return keys


@dataclass(frozen=True)
class UpgradeOutcome:
    model: InstalledModel
    previous: InstalledModel | None
    bundle_sha256: str
    key_id: str
    gate: GateResult
    message: str
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "accepted": True,
            "message": self.message,
            "model": self.model.as_json(),
            "previous": None if self.previous is None else self.previous.as_json(),
            "bundle_sha256": self.bundle_sha256,
            "key_id": self.key_id,
            "gate": {"passed": self.gate.passed, "runs": list(self.gate.runs)},
        }


class Upgrader:
    """Upgrades and rollbacks of one data directory. `gate`: None refuses every upgrade
    ("no regression suite available"); `health`: the post-activation check."""

    def __init__(
        self,
        data_dir: Path,
        settings: UpgradeSettings,
        *,
        gate: Gate | None,
        health: HealthCheck = check_model,
        actor: str = "service",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.settings = settings
        self.gate = gate
        self.health = health
        self.actor = actor
        self.store = ModelStore(self.data_dir)
        self._last: tuple[str | None, str | None] = (None, None)  # bundle hash, key id

    def audit(self, action: str, **fields: Any) -> None:
        audit.record(self.data_dir, action, actor=self.actor, **fields)

    # ------------------------------------------------------------------ start-up

    def prepare(self) -> list[str]:
        """Factory model on a fresh device; after a power cut: leftovers removed and a
        pending model checked (confirmed, or rolled back). Returns what was done."""
        done: list[str] = []
        factory = self.store.ensure_factory(self.settings.factory_dir)
        if factory is not None:
            done.append(f"factory model {factory.model_id} installed and active")
            self.audit("factory-install", model=factory.model_id, message=done[-1])
        removed = self.store.clean_leftovers()
        if removed:
            done.append(f"removed {len(removed)} leftovers of an interrupted upgrade")
        pointer = self.store.require_pointer()
        if pointer.state == "pending":
            done.append(self._settle(self.store.get(pointer.model), after_restart=True))
        return done

    def _settle(self, model: InstalledModel, *, after_restart: bool = False) -> str:
        """Health-check the pending model; confirm it, or roll back and refuse its bundle."""
        _step("health")
        problem = self.health(model.path)
        if problem is None:
            _step("confirm")
            self.store.confirm()
            message = f"{model.model_id} passed its health check and is confirmed"
            self.audit("upgrade-confirmed", model=model.model_id, message=message,
                       bundle_sha256=model.bundle_sha256, key_id=model.key_id)  # fmt: skip
            return message
        refuse = (model.bundle_sha256 or "", model.bundle_json_sha256 or "")
        pointer, _ = self.store.roll_back(refuse)
        back = self.store.get(pointer.model)
        message = (
            f"the new model {model.model_id} failed its health check ({problem}); "
            f"{back.model_id} is active again and this bundle will be refused from now on"
        )
        self.audit("upgrade-rolled-back", model=model.model_id, message=message,
                   bundle_sha256=model.bundle_sha256, key_id=model.key_id,
                   details={"after_restart": after_restart})  # fmt: skip
        if after_restart:
            return message
        raise UpgradeRefusedError(f"upgrade refused: {message}", "health")

    # ------------------------------------------------------------------ upgrade

    def install(self, bundle: Path, *, allow_downgrade: bool = False) -> UpgradeOutcome:
        """Install a bundle; UpgradeRefusedError (active model untouched) says why not."""
        with self.store.lock():
            self.prepare()
            self.audit("upgrade-started", message=f"bundle {bundle}",
                       details={"allow_downgrade": allow_downgrade})  # fmt: skip
            try:
                return self._install(bundle, allow_downgrade)
            except UpgradeRefusedError as exc:
                sha, key_id = self._last
                self.audit("upgrade-refused", message=exc.message, bundle_sha256=sha,
                           key_id=key_id, details={"step": exc.step})  # fmt: skip
                raise
            except EdgeError as exc:
                sha, key_id = self._last
                self.audit("upgrade-failed", message=exc.message, bundle_sha256=sha,
                           key_id=key_id)  # fmt: skip
                raise
            finally:
                self.store.clean_leftovers()

    def _install(self, bundle: Path, allow_downgrade: bool) -> UpgradeOutcome:
        s = self.settings
        self._last = (None, None)
        if s.testpiece_max_age_h is not None:
            from calibration.history import precondition_problem

            problem = precondition_problem(self.data_dir, s.testpiece_max_age_h)
            if problem is not None:
                raise UpgradeRefusedError(f"upgrade refused: {problem}", "precondition")
        _step("copy")
        copy, sha = archive.copy_in(Path(bundle), self.store.incoming, s.max_bundle_bytes)
        self._last = (sha, None)
        _step("verify")
        keys = s.trusted_keys()
        if not keys:
            raise archive.refused(
                "no trusted vendor keys are installed on this device (DATA/keys/*.pub)"
            )
        signed = archive.read_signed(copy, sha, keys, s.max_member_bytes)
        doc = signed.doc
        self._last = (sha, signed.key_id)
        self.audit("upgrade-verified", bundle_sha256=sha, key_id=signed.key_id,
                   model=f"{doc.name}@{doc.version}", details=describe(doc),
                   message=f"signature good (key {signed.key_id})")  # fmt: skip
        if self.store.is_refused(sha, signed.json_sha256):
            raise archive.refused(
                "this bundle failed its health check on this device before and is refused for good"
            )
        if s.compatible not in doc.compatible:
            raise archive.refused(
                f"not compatible with this device: the bundle is for {', '.join(doc.compatible)}; "
                f"this device is {s.compatible}"
            )
        active = self.store.active()
        assert active is not None  # prepare() made sure
        if doc.release <= active.release and not allow_downgrade:
            raise archive.refused(
                f"release {doc.release} ({doc.name} {doc.version}) is not newer than the "
                f"installed release {active.release} ({active.model_id}); to install an older "
                "release on purpose, use --allow-downgrade"
            )
        _step("extract")
        staged = self.store.staging / uuid.uuid4().hex
        archive.extract_listed(signed, staged)
        _step("check")
        self._check_model(staged / MODEL_PREFIX.rstrip("/"), doc.name, doc.version)
        _step("gate")
        tests = staged / TESTS_PREFIX.rstrip("/")
        if self.gate is None:
            raise no_suite(s.suite_dir or self.data_dir / "suite")
        result = self.gate.check(staged / "model", active.path, tests if tests.is_dir() else None)
        if not result.passed:
            raise UpgradeRefusedError(
                f"upgrade refused: {doc.name} {doc.version} failed the regression gate "
                f"({len(result.failures)} failure(s)): {format_failures(result.failures)}",
                "gate",
            )
        _step("store")
        info = {
            "release": doc.release,
            "bundle_sha256": sha,
            "bundle_json_sha256": signed.json_sha256,
            "key_id": signed.key_id,
            "source": str(bundle),
            "tests": list(result.runs),
        }
        model = self.store.add(staged / "model", info)
        shutil.rmtree(staged, ignore_errors=True)
        _step("activate")
        self.store.activate(model.dir_name)
        self.audit("upgrade-activated", bundle_sha256=sha, key_id=signed.key_id,
                   model=model.model_id, message=f"{model.model_id} active, pending its "
                   f"health check (was {active.model_id})")  # fmt: skip
        self._settle(model)
        message = (
            f"upgrade accepted: {model.model_id} (release {model.release}) is active; "
            f"previous: {active.model_id}"
        )
        return UpgradeOutcome(model, active, sha, signed.key_id, result, message)

    def _check_model(self, model_dir: Path, name: str, version: str) -> None:
        from edge.detector import Detector

        try:
            detector = Detector.load(model_dir)
        except EdgeError as exc:
            raise archive.refused(f"the model is not usable: {exc.message}", "check") from None
        manifest = detector.spec.manifest
        if (manifest.name, manifest.version) != (name, version):
            raise archive.refused(
                f"bundle.json names {name} {version} but model/manifest.json is "
                f"{manifest.name} {manifest.version}",
                "check",
            )

    # ------------------------------------------------------------------ rollback

    def roll_back(self) -> tuple[InstalledModel, InstalledModel]:
        """Back to the previous model; returns (now active, rolled back from)."""
        with self.store.lock():
            self.prepare()
            try:
                pointer, left = self.store.roll_back()
            except UpgradeRefusedError as exc:
                self.audit("rollback-refused", message=exc.message)
                raise
            now, before = self.store.get(pointer.model), self.store.get(left)
            self.audit("rollback", model=now.model_id, bundle_sha256=now.bundle_sha256,
                       key_id=now.key_id, message=f"rolled back from {before.model_id} "
                       f"to {now.model_id}")  # fmt: skip
            return now, before
