"""Device threshold overrides: DATA/calibration/thresholds.json, written by `edge calibrate
thresholds`, read by the service when it loads a model.

The model's manifest keeps its shipped thresholds; the overrides hold the operating point
chosen on this device's calibration set, with the model (name, version, SHA-256 of
model.onnx) they were chosen for. They apply only to that model: after an upgrade or a
rollback to another model they are ignored (with a warning) until recalibrated.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calibration.profile import calibration_dir
from edge.detector.manifest import MANIFEST_NAME, MODEL_NAME, Manifest, parse_manifest
from edge.errors import EdgeError
from edge.store.images import fsync_dir

logger = logging.getLogger(__name__)
FILE_NAME = "thresholds.json"
FORMAT = "edge-thresholds/1"


def overrides_path(data_dir: Path) -> Path:
    return calibration_dir(data_dir) / FILE_NAME


def write_overrides(data_dir: Path, doc: Mapping[str, Any]) -> Path:
    """Replace the overrides file atomically (temp file, fsync, rename, fsync the folder)."""
    path = overrides_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{FILE_NAME}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as out:
        out.write(json.dumps({"format": FORMAT, **doc}, indent=2, sort_keys=True) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


def read_overrides(data_dir: Path) -> dict[str, Any] | None:
    """The overrides document, or None when there is none or it is unreadable (warned)."""
    path = overrides_path(data_dir)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        logger.warning("%s is unreadable (%s); the model's own thresholds apply", path, exc)
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        logger.warning("%s: expected format %r; the model's own thresholds apply", path, FORMAT)
        return None
    return doc


@dataclass(frozen=True)
class DeviceThresholds:
    """What the device's overrides say for one model: `thresholds` (class -> score) when
    they were calibrated for it, else None (its manifest's apply) and `reason` says why."""

    path: Path
    thresholds: dict[str, float] | None
    reason: str
    calibrated_for: dict[str, Any] | None = None  # the overrides' model, when there are any
    other_model: bool = False  # they were calibrated for another model


def lookup(data_dir: Path, manifest: Manifest) -> DeviceThresholds:
    """The device's thresholds for the model `manifest` describes (its model.onnx SHA-256),
    without logging a mismatch: `thresholds_for` is the service's, noisy, form."""
    path = overrides_path(data_dir)
    doc = read_overrides(data_dir)
    if doc is None:
        why = "unreadable, see the log" if path.is_file() else "none calibrated"
        return DeviceThresholds(path, None, f"no device thresholds ({why}: {path})")
    found = doc.get("model")
    model: dict[str, Any] = found if isinstance(found, dict) else {}
    sha = manifest.sha256[MODEL_NAME].lower()
    if model.get("sha256") != sha:
        return DeviceThresholds(
            path,
            None,
            f"the device thresholds in {path} were calibrated for model {model.get('name')}@"
            f"{model.get('version')} (sha256 {str(model.get('sha256') or '-')[:12]}), not this one",
            model,
            other_model=True,
        )
    thresholds = doc.get("thresholds")
    if (
        not isinstance(thresholds, dict)
        or not thresholds
        or not all(
            name in manifest.classes
            and isinstance(v, int | float)
            and not isinstance(v, bool)
            and 0.0 <= v <= 1.0
            for name, v in thresholds.items()
        )
    ):
        logger.warning(
            "%s: 'thresholds': expected scores in [0, 1] for classes of %s (%s); ignored",
            path, manifest.model_id, ", ".join(manifest.classes),
        )  # fmt: skip
        return DeviceThresholds(path, None, f"the device thresholds in {path} are malformed", model)
    when = doc.get("created")
    return DeviceThresholds(
        path,
        {str(k): float(v) for k, v in thresholds.items()},
        f"calibrated on this device for this model ({path}"
        + (f", {when})" if isinstance(when, str) else ")"),
        model,
    )


def thresholds_for(data_dir: Path, model_dir: Path) -> dict[str, float] | None:
    """The device's thresholds for the model in `model_dir` (class -> score), or None when
    there are none, or they were calibrated for another model (warned): then the manifest's
    thresholds apply. The model's hash is the manifest's, which loading checks against
    model.onnx."""
    try:
        manifest = parse_manifest((Path(model_dir) / MANIFEST_NAME).read_bytes())
    except (OSError, EdgeError):
        return None  # the model will not load either; loading says why
    found = lookup(data_dir, manifest)
    model = found.calibrated_for
    if found.other_model and model is not None:
        logger.warning(
            "device thresholds in %s were calibrated for model %s@%s (sha256 %.12s), not for "
            "%s (sha256 %.12s): ignored, the model's own thresholds apply; run `edge calibrate "
            "thresholds` for this model",
            found.path, model.get("name"), model.get("version"), model.get("sha256") or "-",
            manifest.model_id, manifest.sha256[MODEL_NAME].lower(),
        )  # fmt: skip
    return found.thresholds
