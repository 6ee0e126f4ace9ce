"""Test runs in the image log: the migration, add / list / get, and recording while a
service holds the data directory."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from edge.store import Store
from edge.store.test_runs import (
    NoSuchTestRunError,
    add_test_run,
    get_test_run,
    list_test_runs,
    record_test_run,
    run_row,
)


def report(n: int, passed: bool = True) -> dict[str, Any]:
    return {
        "run_id": f"t-20260101-00000{n}-abcdef",
        "created": f"2026-01-01T00:00:0{n}.000000Z",
        "model": {"id": "demo@1.0.0", "sha256": "ab" * 32},
        "baseline": None if n % 2 else {"id": "demo@0.9.0", "sha256": "cd" * 32},
        "suite": {"name": "standard", "sha256": "ef" * 32, "label_version": 3},
        "gate": {"passed": passed, "failures": [] if passed else [{"check": "latency"}]},
        "metrics": {"summary": {"passed": passed, "pfa": 0.1}},
        "sha256": "12" * 32,
    }


def test_add_list_get(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        for n in range(1, 4):
            store.submit_write(
                lambda db, n=n: add_test_run(db, run_row(report(n, n != 2)))
            ).result()
    with sqlite3.connect(tmp_path / "edge.db") as conn:
        runs, total = list_test_runs(conn, limit=2)
        assert total == 3
        assert [r.id for r in runs] == ["t-20260101-000003-abcdef", "t-20260101-000002-abcdef"]
        assert runs[1].passed is False and runs[1].failures == 1 and runs[1].report is None
        assert runs[1].baseline == "demo@0.9.0" and runs[0].baseline is None
        later, _ = list_test_runs(conn, limit=2, offset=2)
        assert [r.id for r in later] == ["t-20260101-000001-abcdef"]
        one = get_test_run(conn, "t-20260101-000002-abcdef")
        assert one.report == report(2, False) and one.label_version == 3
        assert one.as_json()["report"]["gate"]["passed"] is False
        with pytest.raises(NoSuchTestRunError, match="no test run 't-x'"):
            get_test_run(conn, "t-x")


def test_record_through_the_store_or_beside_a_running_service(tmp_path: Path) -> None:
    assert record_test_run(tmp_path, run_row(report(1))) == "t-20260101-000001-abcdef"
    with Store(tmp_path):  # a service holds the directory: the run goes in beside it
        assert record_test_run(tmp_path, run_row(report(2))) == "t-20260101-000002-abcdef"
    with sqlite3.connect(tmp_path / "edge.db") as conn:
        assert list_test_runs(conn)[1] == 2
