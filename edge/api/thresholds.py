"""The detection thresholds in force for the running model, for GET /api/models and the
technician page: the manifest's per-class scores and, where this device has calibrated
overrides for that exact model (same SHA-256 of model.onnx; `edge calibrate thresholds`),
the overrides, which replace them class by class, and where they came from.

The model's directory is found by its SHA-256 among the installed models (or is the
screener's own, for a service started with --model); the overrides are read as the
service reads them when it loads a model (calibration.overrides.thresholds_for).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from calibration.overrides import overrides_path, read_overrides, thresholds_for
from edge.detector.manifest import MANIFEST_NAME, MODEL_NAME, Manifest, parse_manifest
from edge.errors import EdgeError
from edge.upgrade.manager import ModelManager


def model_dir_of(screener: Any, models: ModelManager | None, sha256: str) -> Path | None:
    """The directory of the model with this SHA-256: an installed one, else the screener's
    (an isolated detector knows its directory), else None."""
    if models is not None:
        for model in models.store.installed():
            if model.model_sha256.lower() == sha256.lower():
                return model.path
    found = getattr(screener, "model_dir", None)
    return found if isinstance(found, Path) else None


def _loaded_thresholds(screener: Any) -> dict[str, float] | None:
    """The per-class scores the running detector reports in force, when it reports them
    (an isolated detector does, from its worker process)."""
    info = getattr(screener, "info", None)
    found = getattr(info, "thresholds", None)
    if isinstance(found, dict) and found:
        return {str(k): float(v) for k, v in found.items()}
    return None


def thresholds_in_force(
    screener: Any, models: ModelManager | None, data_dir: Path | None, sha256: str
) -> dict[str, Any] | None:
    """{source, in_force, manifest, overrides, calibration, note} for the running model;
    None when its directory cannot be found (nothing to read the manifest from)."""
    model_dir = model_dir_of(screener, models, sha256)
    if model_dir is None:
        return None
    try:
        manifest = parse_manifest((model_dir / MANIFEST_NAME).read_bytes())
    except (OSError, EdgeError):
        return None
    shipped = dict(zip(manifest.classes, manifest.class_thresholds(), strict=True))
    overrides, calibration, note = _overrides(manifest, model_dir, data_dir)
    loaded = _loaded_thresholds(screener)
    return {
        "source": "device calibration" if overrides else "model manifest",
        "in_force": loaded or shipped | (overrides or {}),
        "manifest": shipped,
        "overrides": overrides,
        "calibration": calibration,
        "note": note,
    }


def _overrides(
    manifest: Manifest, model_dir: Path, data_dir: Path | None
) -> tuple[dict[str, float] | None, dict[str, Any] | None, str | None]:
    """(overrides for this model, where they came from, why none apply)."""
    doc = read_overrides(data_dir) if data_dir is not None else None
    if doc is None or data_dir is None:
        return None, None, None
    found = doc.get("model")
    model: dict[str, Any] = found if isinstance(found, dict) else {}
    if model.get("sha256") != manifest.sha256[MODEL_NAME].lower():
        note = (
            f"device thresholds were calibrated for model {model.get('name')}@"
            f"{model.get('version')}, not for {manifest.model_id}: the manifest's apply "
            "until `edge calibrate thresholds` is run for this model"
        )
        return None, None, note
    overrides = thresholds_for(data_dir, model_dir)
    if overrides is None:
        return None, None, f"{overrides_path(data_dir)} is not valid: the manifest's apply"
    dataset = doc.get("dataset")
    calibration = {
        "file": str(overrides_path(data_dir)),
        "created": doc.get("created"),
        "model": model,
        "dataset": dataset if isinstance(dataset, dict) else None,
    }
    return overrides, calibration, None
