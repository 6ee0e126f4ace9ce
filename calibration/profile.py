"""Versioned scanner calibration profiles under DATA/calibration/.

A profile is `scanner-NNNN.npz` (the maps) plus `scanner-NNNN.json` (the header: version,
date, source files' SHA-256, the report, the material curves). The JSON is written last,
by rename, so a profile without its header is an interrupted build and is ignored. The
active profile is the newest complete one; older ones stay for the drift report and audit.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from calibration.errors import CalibrationInputError
from calibration.flatfield import FlatField
from calibration.materials import MaterialCurves

PROFILE_RE = re.compile(r"^scanner-(\d{4,})\.json$")
FORMAT = 1


@dataclass(frozen=True)
class Profile:
    version: int
    header: dict[str, Any]
    flatfield: FlatField
    curves: MaterialCurves | None

    @property
    def name(self) -> str:
        return profile_name(self.version)


def profile_name(version: int) -> str:
    return f"scanner-{version:04d}"


def calibration_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "calibration"


def versions(data_dir: Path) -> list[int]:
    """Complete profile versions, oldest first."""
    folder = calibration_dir(data_dir)
    if not folder.is_dir():
        return []
    found = (PROFILE_RE.match(p.name) for p in folder.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def load(data_dir: Path, version: int) -> Profile:
    folder = calibration_dir(data_dir)
    name = profile_name(version)
    try:
        header = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
        with np.load(folder / f"{name}.npz") as maps:
            channels = [str(c) for c in header["channels"]]
            field = FlatField(
                {c: maps[f"offset_{c}"].astype(np.float32) for c in channels},
                {c: maps[f"response_{c}"].astype(np.float32) for c in channels},
                maps["bad"].astype(bool),
            )
    except (OSError, ValueError, KeyError) as exc:
        raise CalibrationInputError(
            f"calibration profile {name} in {folder} cannot be read ({exc}); "
            "run `edge calibrate scanner` again"
        ) from exc
    curves = header.get("materials")
    return Profile(
        version, header, field, None if curves is None else MaterialCurves.from_json(curves)
    )


def active(data_dir: Path) -> Profile | None:
    """The newest complete profile, or None before the first calibration."""
    found = versions(data_dir)
    return load(data_dir, found[-1]) if found else None


def save(
    data_dir: Path,
    field: FlatField,
    curves: MaterialCurves | None,
    sources: list[dict[str, str]],
    report: dict[str, Any],
) -> Profile:
    """Write the next version: maps first, then the header (the commit)."""
    folder = calibration_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    version = (versions(data_dir) or [0])[-1] + 1
    name = profile_name(version)
    arrays: dict[str, Any] = {"bad": field.bad}
    for c in field.channels:
        arrays[f"offset_{c}"] = field.offset[c]
        arrays[f"response_{c}"] = field.response[c]
    tmp = folder / f".{name}.npz.tmp"
    with tmp.open("wb") as out:
        np.savez_compressed(out, **arrays)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(folder / f"{name}.npz")
    header = {
        "format": FORMAT,
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "width": field.width,
        "channels": list(field.channels),
        "sources": sources,
        "report": report,
        "materials": None if curves is None else curves.as_json(),
    }
    tmp = folder / f".{name}.json.tmp"
    tmp.write_text(json.dumps(header, indent=2) + "\n", encoding="utf-8")
    tmp.replace(folder / f"{name}.json")
    return Profile(version, header, field, curves)
