"""Which per-class thresholds a test judges a model at: `--thresholds manifest|device|FILE`.

A model's bag figures (Pd, Pfa) and operating-point detections depend on its thresholds,
so a test must judge each model at the thresholds it runs with on this device:

- "manifest": the thresholds the model ships with (manifest.json);
- "device": the device's calibrated overrides (DATA/calibration/thresholds.json, written
  by `edge calibrate thresholds`) when they were made for this model's SHA-256, else its
  manifest's, exactly as `edge serve` chooses (a new model starts at its manifest's);
- FILE: a JSON file of class -> score (or a thresholds document of that shape under
  "thresholds"), for the tested model only; classes it leaves out keep the manifest's.

Every model's thresholds are reported per class with their source (`Judged.as_json`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.detector.manifest import Manifest
from edge.errors import BadInputError

MANIFEST, DEVICE, FILE = "manifest", "device", "file"
MAX_FILE_BYTES = 64 << 10
MAX_CLASSES = 1000


class ThresholdsFileError(BadInputError):
    """A --thresholds FILE that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Judged:
    """The thresholds a model was judged at: per class, in the model's class order, with
    each class's source ("manifest", "device" or "file") and the manifest's own value."""

    classes: tuple[str, ...]
    thresholds: tuple[float, ...]
    manifest: tuple[float, ...]
    sources: tuple[str, ...]
    source: str  # the rule asked for: "manifest", "device" or "file"
    detail: str  # where they came from, in words (the overrides' path, why not, the file)
    path: str | None = None

    @classmethod
    def from_manifest(cls, manifest: Manifest, detail: str = "the model's manifest") -> Judged:
        shipped = tuple(manifest.class_thresholds())
        names = tuple(manifest.classes)
        return cls(names, shipped, shipped, (MANIFEST,) * len(names), MANIFEST, detail)

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "detail": self.detail,
            "path": self.path,
            "classes": {
                name: {"threshold": value, "source": source, "manifest": shipped}
                for name, value, source, shipped in zip(
                    self.classes, self.thresholds, self.sources, self.manifest, strict=True
                )
            },
        }


def _merged(
    manifest: Manifest, values: dict[str, float], source: str, detail: str, path: str | None
) -> Judged:
    shipped = manifest.class_thresholds()
    names = tuple(manifest.classes)
    return Judged(
        names,
        tuple(values.get(c, s) for c, s in zip(names, shipped, strict=True)),
        tuple(shipped),
        tuple(source if c in values else MANIFEST for c in names),
        source,
        detail,
        path,
    )


@dataclass(frozen=True)
class ThresholdRule:
    """How to choose a model's thresholds: `source` "manifest", "device" (with `data_dir`)
    or "file" (with `values` read by `read_thresholds_file` from `file`)."""

    source: str = MANIFEST
    data_dir: Path | None = None
    file: Path | None = None
    values: dict[str, float] | None = None

    def judge(self, manifest: Manifest) -> Judged:
        """The thresholds for the model of `manifest`; ThresholdsFileError when a FILE names
        a class the model lacks."""
        if self.source == DEVICE and self.data_dir is not None:
            from calibration.overrides import lookup

            found = lookup(self.data_dir, manifest)
            if found.thresholds is None:
                return Judged.from_manifest(manifest, f"the model's manifest: {found.reason}")
            return _merged(manifest, found.thresholds, DEVICE, found.reason, str(found.path))
        if self.source == FILE and self.values is not None:
            unknown = sorted(set(self.values) - set(manifest.classes))
            if unknown:
                raise ThresholdsFileError(
                    f"--thresholds {self.file}: unknown class(es) {', '.join(unknown)} for model "
                    f"{manifest.model_id} (classes: {', '.join(manifest.classes)})"
                )
            return _merged(manifest, self.values, FILE, f"the file {self.file}", str(self.file))
        return Judged.from_manifest(manifest)

    def for_baseline(self) -> ThresholdRule:
        """The rule for the model a test compares with: a FILE is for the tested model
        only, so the baseline runs as the device would run it."""
        if self.source == FILE:
            return ThresholdRule(DEVICE if self.data_dir is not None else MANIFEST, self.data_dir)
        return self


def read_thresholds_file(path: Path) -> dict[str, float]:
    """class -> score from a JSON file: {"gun": 0.4, ...}, or a document holding that
    under "thresholds" (the device overrides' format). ThresholdsFileError says why not."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ThresholdsFileError(
            f"--thresholds {path}: cannot read ({exc.strerror or exc}); expected manifest, "
            "device or a JSON file of class thresholds"
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise ThresholdsFileError(
            f"--thresholds {path}: larger than {MAX_FILE_BYTES} bytes; expected a small JSON "
            "object of class thresholds"
        )
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ThresholdsFileError(f"--thresholds {path}: not valid JSON ({exc})") from None
    if isinstance(doc, dict) and isinstance(doc.get("thresholds"), dict):
        doc = doc["thresholds"]
    if not isinstance(doc, dict) or not doc:
        raise ThresholdsFileError(
            f'--thresholds {path}: expected a JSON object of class thresholds, e.g. {{"gun": 0.4}}'
        )
    if len(doc) > MAX_CLASSES:
        raise ThresholdsFileError(f"--thresholds {path}: more than {MAX_CLASSES} classes")
    out: dict[str, float] = {}
    for name, value in doc.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ThresholdsFileError(
                f"--thresholds {path}: {name!r}: expected a score in [0, 1], got {value!r}"
            )
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ThresholdsFileError(
                f"--thresholds {path}: {name!r}: {value!r} is out of range; expected a score "
                "in [0, 1]"
            )
        out[name] = float(value)
    return out


def rule_from_arg(value: str | None, data_dir: Path | None) -> ThresholdRule:
    """The rule `--thresholds VALUE` asks for; None (not given) is "device" when there is a
    data directory: each model at its device overrides when they exist for it, else at its
    manifest's."""
    if value is None or value == DEVICE:
        return ThresholdRule(DEVICE if data_dir is not None else MANIFEST, data_dir)
    if value == MANIFEST:
        return ThresholdRule(MANIFEST)
    path = Path(value)
    return ThresholdRule(FILE, data_dir, path, read_thresholds_file(path))
