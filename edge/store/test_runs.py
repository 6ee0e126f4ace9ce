"""Test runs in the image log (`test_runs`, migration 0003): add, list, get.

`edge test` records each run with its report so the API and the UI can list them.
`add_test_run` is a writer job (Store.submit_write); the readers take any query-only
connection. `record_test_run` is the CLI's shell: through the Store when the data
directory is free, else (a service holds it) through a connection of its own, relying on
SQLite's locking, and only when the running service has already created the table.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from edge.store.errors import StoreBusyError, StoreError
from edge.store.records import RowLike, iso, utc_now

TABLE = "test_runs"
# Kept in the row's `summary` JSON (with the headline figures under "figures").
SUMMARY_FIELDS = (
    "kind", "failures", "model", "model_sha256", "baseline", "baseline_sha256", "suite_name",
    "suite_sha256", "label_version", "report_sha256", "report_path",
)  # fmt: skip


class NoSuchTestRunError(StoreError):
    http_status = 404
    exit_status = 2


@dataclass(frozen=True)
class StoredTestRun:
    """One run; `report` only when asked for (get_test_run), else None; `figures` the
    headline figures (Pd per class, Pfa, mAP@0.5, p95 latency)."""

    id: str
    created: str
    kind: str
    passed: bool
    failures: int
    model: str
    model_sha256: str | None
    baseline: str | None
    baseline_sha256: str | None
    suite_name: str | None
    suite_sha256: str | None
    label_version: int | None
    report_sha256: str | None
    report_path: str | None
    figures: dict[str, Any]
    report: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: RowLike, with_report: bool = False) -> StoredTestRun:
        summary = json.loads(row["summary"])
        return cls(
            id=row["id"],
            created=row["created"],
            passed=bool(row["passed"]),
            figures=summary.get("figures", {}),
            report=json.loads(row["report"]) if with_report else None,
            **{name: summary.get(name) for name in SUMMARY_FIELDS},
        )

    def as_json(self) -> dict[str, Any]:
        doc = {k: v for k, v in asdict(self).items() if k != "report"}
        if self.report is not None:
            doc["report"] = self.report
        return doc


def new_run_id() -> str:
    """'t-YYYYMMDD-HHMMSS-xxxxxx': sorts by time, unique, safe in a URL path."""
    return f"t-{utc_now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def run_row(report: dict[str, Any], report_path: Path | None = None) -> dict[str, Any]:
    """The row of a regression report (edge/validation/report.py's document)."""
    model, baseline, suite = report["model"], report.get("baseline"), report["suite"]
    gate = report["gate"]
    summary = {
        "kind": "regression",
        "failures": len(gate["failures"]),
        "model": model["id"],
        "model_sha256": model["sha256"],
        "baseline": None if baseline is None else baseline["id"],
        "baseline_sha256": None if baseline is None else baseline["sha256"],
        "suite_name": suite["name"],
        "suite_sha256": suite["sha256"],
        "label_version": suite["label_version"],
        "report_sha256": report["sha256"],
        "report_path": None if report_path is None else str(report_path),
        "figures": report["metrics"]["summary"],
    }
    return {
        "id": report.get("run_id") or new_run_id(),
        "created": report.get("created") or iso(utc_now()),
        "passed": int(bool(gate["passed"])),
        "summary": json.dumps(summary, separators=(",", ":")),
        "report": json.dumps(report, separators=(",", ":")),
    }


def add_test_run(db: Database, row: dict[str, Any]) -> str:
    """Writer job: insert one run row; returns its id."""
    db.table(TABLE).insert(row)
    return str(row["id"])


def list_test_runs(
    conn: sqlite3.Connection, limit: int = 50, offset: int = 0
) -> tuple[list[StoredTestRun], int]:
    """Runs newest first (without their reports), and how many there are."""
    conn.row_factory = sqlite3.Row
    rows = conn.execute(
        f"SELECT id, created, passed, summary FROM {TABLE} ORDER BY id DESC LIMIT ? OFFSET ?",
        (limit, offset),
    ).fetchall()
    total = int(conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])
    return [StoredTestRun.from_row(r) for r in rows], total


def get_test_run(conn: sqlite3.Connection, run_id: str) -> StoredTestRun:
    """One run with its report; NoSuchTestRunError when there is none."""
    conn.row_factory = sqlite3.Row
    row = conn.execute(f"SELECT * FROM {TABLE} WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise NoSuchTestRunError(f"no test run {run_id!r} in the image log")
    return StoredTestRun.from_row(row, with_report=True)


def record_test_run(data_dir: Path, row: dict[str, Any]) -> str:
    """Add a run to the image log in `data_dir` (created if new); returns the run id."""
    from edge.store.store import Store  # the store imports the schema, which names this table

    try:
        with Store(data_dir) as store:
            return store.submit_write(lambda db: add_test_run(db, row)).result()
    except StoreBusyError:
        pass
    from edge.store.writer import connect

    conn = connect(data_dir / "edge.db", writer=True)
    try:
        known = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
        ).fetchone()
        if known is None:
            raise StoreBusyError(
                f"{data_dir} is in use by a service that predates test runs; restart it (or "
                "stop it) for runs to be recorded"
            )
        with conn:
            add_test_run(Database(conn, execute_plugins=False), row)
        return str(row["id"])
    finally:
        conn.close()
