"""Test-piece checks over time: DATA/calibration/testpiece.jsonl, one JSON line per check.

A plain append-only file rather than an image-log table: the check runs from the command
line while the service may be writing the log, and the upgrade precondition reads it
without opening the store. A torn last line (power cut mid-append) is skipped.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from calibration.profile import calibration_dir

logger = logging.getLogger(__name__)
FILE_NAME = "testpiece.jsonl"


def history_path(data_dir: Path) -> Path:
    return calibration_dir(data_dir) / FILE_NAME


def record(data_dir: Path, entry: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
    """Append one check (its date added as `at`, ISO 8601 UTC); returns the stored entry."""
    stamp = (at or datetime.now(UTC)).astimezone(UTC)
    stored = {"at": stamp.isoformat(timespec="seconds").replace("+00:00", "Z"), **entry}
    path = history_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(stored, sort_keys=True) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return stored


def entries(data_dir: Path) -> list[dict[str, Any]]:
    """Every recorded check, oldest first."""
    path = history_path(data_dir)
    if not path.is_file():
        return []
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            logger.warning("%s line %d is not JSON; skipped", path, number)
            continue
        if isinstance(entry, dict) and "at" in entry:
            out.append(entry)
    return out


def precondition_problem(
    data_dir: Path, max_age_h: float, now: datetime | None = None
) -> str | None:
    """Why the latest test-piece check does not allow an upgrade, or None when it does."""
    found = entries(data_dir)
    if not found:
        return "no test-piece check has been recorded; scan the test piece and run `edge calibrate testpiece`"
    latest = found[-1]
    at = datetime.fromisoformat(str(latest["at"]).replace("Z", "+00:00"))
    age_h = ((now or datetime.now(UTC)) - at).total_seconds() / 3600
    if not latest.get("passed"):
        failed = "; ".join(latest.get("failures", [])) or "see `edge calibrate testpiece --history`"
        return f"the latest test-piece check ({latest['at']}) failed: {failed}"
    if age_h > max_age_h:
        return (
            f"the latest test-piece check is {age_h:.0f} h old ({latest['at']}); "
            f"a check within {max_age_h:g} h is required: scan the test piece again"
        )
    return None
