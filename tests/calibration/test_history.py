"""Test-piece history and the upgrade precondition built on it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from calibration import history
from edge.upgrade.engine import Upgrader, UpgradeSettings
from edge.upgrade.errors import UpgradeRefusedError

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

CASES = [
    ("none", [], "no test-piece check has been recorded"),
    ("failed", [(1, False)], "the latest test-piece check (2025-03-01T11:00:00Z) failed: x"),
    ("old", [(30, True)], "is 30 h old (2025-02-29"),
    ("fresh", [(30, False), (2, True)], None),
]


@pytest.mark.parametrize(("case", "checks", "problem"), CASES, ids=[c[0] for c in CASES])
def test_precondition(
    tmp_path: Path, case: str, checks: list[tuple[int, bool]], problem: str | None
) -> None:
    for hours_ago, passed in checks:
        at = NOW - timedelta(hours=hours_ago)
        history.record(tmp_path, {"passed": passed, "failures": ["x"]}, at=at)
    found = history.precondition_problem(tmp_path, 24.0, now=NOW)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem.replace("02-29", "02-28") in found


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    history.record(tmp_path, {"passed": True}, at=NOW)
    with history.history_path(tmp_path).open("a") as out:
        out.write('{"at": "2025-03')
    assert [e["passed"] for e in history.entries(tmp_path)] == [True]


def test_an_upgrade_is_refused_while_the_check_fails(tmp_path: Path) -> None:
    history.record(tmp_path, {"passed": False, "failures": ["finest grating 3.2 mm"]})
    upgrader = Upgrader(tmp_path, UpgradeSettings(testpiece_max_age_h=24.0), gate=None)
    with pytest.raises(UpgradeRefusedError) as caught:
        upgrader.install(tmp_path / "bundle.tar")
    assert caught.value.step == "precondition"
    assert "upgrade refused: the latest test-piece check" in caught.value.message
    assert "finest grating 3.2 mm" in caught.value.message
